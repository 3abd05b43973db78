"""The dashboard's routes under ``/ui/``: pages for people, served by the API process.

A person signs in once with an API token (sessions.py); from then on every page and action
reads the token by the session's name and applies it exactly as the API does: the ``read``
role to see anything, ``operate`` to act, and the token's namespaces everywhere (a rollout in
another namespace is the 404 of an unknown one, ``auth.visible_rollout``). An action is a form
POST carrying the session's CSRF token, handled by ``Intake.command`` like the API's commands,
with the token's name as the actor; a POST without a session, without the role, or without the
right CSRF token is a 403 and changes nothing.

The two ``/ui/live/...`` routes answer the page script (static/dashboard.js) with the page's
parts as JSON, or 204 when nothing changed since the version it holds, and 401 once the
session has ended. Every answer carries a Content-Security-Policy that allows nothing but this
origin's own files: no inline script or style, no other host.

Sessions live in the store (sessions.py), so a store that cannot be reached makes a page a 503
that says so (``DashboardRoute``), never a sign-out; the live JSON keeps the API's JSON 503,
which the page script shows as a lost connection and retries.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from canarist.api.auth import visible_rollout
from canarist.api.handlers import ApiError
from canarist.api.routes import services
from canarist.ui.actions import BY_NAME
from canarist.ui.live import (
    SignedIn,
    dashboard,
    list_parts,
    rollout_view,
    signed_in,
    version_of,
)
from canarist.ui.sessions import COOKIE, clear_cookie, set_cookie
from canarist.ui.static import static_file
from canarist.ui.views import (
    Filters,
    confirm_page,
    count_text,
    list_page,
    list_rows,
    message_page,
    sign_in_page,
)
from workers.errors import NotFound, StoreUnavailable

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'; object-src 'none'"
    ),
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
STORE_DOWN = (
    "The dashboard cannot reach its state store (Redis) just now, so it can neither check your "
    "sign-in nor read the rollouts. You are not signed out: reload in a few seconds."
)


def page(html: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


class DashboardRoute(APIRoute):
    """A page (not ``/ui/live/``) whose store is unreachable answers an HTML 503 saying so."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.path.startswith("/ui/live/"):
            return handler

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except StoreUnavailable:
                retry = {"Retry-After": "5"}
                return page(message_page("Unavailable", STORE_DOWN, None), 503, retry)

        return guarded


router = APIRouter(prefix="/ui", include_in_schema=False, route_class=DashboardRoute)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def to_sign_in(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other(f"/ui/sign-in?next={quote(here, safe='')}")


def safe_next(url: str) -> str:
    """Only a dashboard path: never another host (``//evil``) or a scheme."""
    if url.startswith("/ui/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/ui/rollouts"


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the body is already bounded by the API's Edge); a form a
    browser posts from another site (its ``Origin`` names another host) is refused first, so
    no other site can sign a person in under its own token either."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "forbidden", "a form from another site is refused")
    text = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=20))


Form = Annotated[dict[str, str], Depends(form_fields)]


def forbidden(reason: str, who: SignedIn | None) -> HTMLResponse:
    viewer = who.viewer() if who else None
    return page(message_page("Not allowed", reason, viewer), 403)


def acting(request: Request, form: dict[str, str]) -> SignedIn | HTMLResponse:
    """The signed-in operator behind a form POST, or the 403 that refuses it."""
    who = signed_in(request)
    if who is None:
        return forbidden("Sign in to act: this form was not sent from a signed-in session.", None)
    if not who.session.csrf_matches(form.get("csrf")):
        return forbidden("This form is stale or was not sent by this dashboard: reload it.", who)
    if not who.caller.token.grants("operate"):
        return forbidden(f"Token {who.caller.name!r} may read but not act (no operate role).", who)
    return who


@router.get("", response_class=RedirectResponse)
@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return see_other("/ui/rollouts")


@router.get("/static/{name}")
def static(name: str) -> Response:
    found = static_file(name)
    if found is None:
        return page(message_page("Not found", f"no file {name}", None), 404)
    body, media_type = found
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(body, media_type=media_type, headers=headers)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str = "/ui/rollouts") -> Response:
    if signed_in(request) is not None:
        return see_other(safe_next(next))
    return page(sign_in_page(safe_next(next)))


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(request: Request, form: Form) -> Response:
    found, board = services(request), dashboard(request)
    next_url = safe_next(form.get("next", ""))
    token = found.settings.token_for(form.get("token", "").strip())
    if token is None:
        return page(sign_in_page(next_url, "That is not a valid API token."), 401)
    if not token.grants("read"):
        return page(sign_in_page(next_url, f"Token {token.name!r} has no read role."), 403)
    board.sessions.end(request.cookies.get(COOKIE))
    session = board.sessions.start(token)
    response = see_other(next_url)
    set_cookie(response, request, session, board.sessions.lifetime_seconds)
    return response


@router.post("/sign-out", response_class=HTMLResponse)
def sign_out(request: Request, form: Form) -> Response:
    who = signed_in(request)
    if who is not None and not who.session.csrf_matches(form.get("csrf")):
        return forbidden("This form was not sent by this dashboard.", who)
    if who is not None:
        dashboard(request).sessions.end(who.session.id)
    response = see_other("/ui/sign-in")
    clear_cookie(response, request)
    return response


def _filters(namespace: str, app: str, phase: str) -> Filters:
    return Filters(namespace.strip(), app.strip(), phase.strip())


FilterQuery = Annotated[str, Query(max_length=200)]


@router.get("/rollouts", response_class=HTMLResponse)
def rollouts(
    request: Request, namespace: FilterQuery = "", app: FilterQuery = "", phase: FilterQuery = ""
) -> Response:
    who = signed_in(request)
    if who is None:
        return to_sign_in(request)
    filters = _filters(namespace, app, phase)
    if filters.namespace and not who.caller.token.allows(filters.namespace):
        return forbidden(f"Your token may not see namespace {filters.namespace!r}.", who)
    rows, now = list_parts(request, who, filters)
    return page(list_page(rows, filters, now, who.viewer()))


@router.get("/live/rollouts")
def rollouts_live(
    request: Request,
    namespace: FilterQuery = "",
    app: FilterQuery = "",
    phase: FilterQuery = "",
    seen: FilterQuery = "",
) -> Response:
    who = signed_in(request)
    if who is None:
        raise ApiError(401, "unauthorized", "the dashboard session has ended: sign in again")
    filters = _filters(namespace, app, phase)
    if filters.namespace and not who.caller.token.allows(filters.namespace):
        raise ApiError(403, "forbidden", f"namespace {filters.namespace!r} is not yours")
    rows, now = list_parts(request, who, filters)
    parts = {"rows": list_rows(rows, now), "count": count_text(rows)}
    return _live_answer(parts, version_of(parts), seen)


@router.get("/rollouts/{rollout_id}", response_class=HTMLResponse)
def rollout(request: Request, rollout_id: str, done: str = "") -> Response:
    who = signed_in(request)
    if who is None:
        return to_sign_in(request)
    try:
        view = rollout_view(request, who, rollout_id)
    except NotFound:
        return page(message_page("Not found", f"No rollout {rollout_id}.", who.viewer()), 404)
    action = BY_NAME.get(done)
    notice = f"{action.label}: recorded under {who.caller.name}." if action else ""
    return page(view.page(who.viewer(), notice))


@router.get("/live/rollouts/{rollout_id}")
def rollout_live(request: Request, rollout_id: str, seen: FilterQuery = "") -> Response:
    who = signed_in(request)
    if who is None:
        raise ApiError(401, "unauthorized", "the dashboard session has ended: sign in again")
    found = services(request)
    stored = found.intake.store.load(rollout_id)  # NotFound: the API's 404
    if not who.caller.token.allows(stored.state.namespace):
        raise NotFound(f"no rollout {rollout_id}")
    if seen == str(stored.revision):
        return Response(status_code=204, headers=SECURITY_HEADERS)
    view = rollout_view(request, who, rollout_id)
    return _live_answer(view.parts, view.version, seen)


def _live_answer(parts: dict[str, str], version: str, seen: str) -> Response:
    if seen == version:
        return Response(status_code=204, headers=SECURITY_HEADERS)
    return JSONResponse({"version": version, "parts": parts}, headers=SECURITY_HEADERS)


@router.get("/rollouts/{rollout_id}/actions/{name}", response_class=HTMLResponse)
def confirm(request: Request, rollout_id: str, name: str) -> Response:
    who = signed_in(request)
    if who is None:
        return to_sign_in(request)
    action = BY_NAME.get(name)
    if action is None:
        return page(message_page("Not found", f"No action {name}.", who.viewer()), 404)
    if not who.caller.token.grants("operate"):
        return forbidden(f"Token {who.caller.name!r} may read but not act.", who)
    try:
        state, _ = visible_rollout(services(request).intake, who.caller, rollout_id)
    except NotFound:
        return page(message_page("Not found", f"No rollout {rollout_id}.", who.viewer()), 404)
    return page(confirm_page(state, action, who.viewer()))


@router.post("/rollouts/{rollout_id}/actions/{name}", response_class=HTMLResponse)
def act(request: Request, rollout_id: str, name: str, form: Form) -> Response:
    who = acting(request, form)
    if isinstance(who, HTMLResponse):
        return who
    action = BY_NAME.get(name)
    if action is None:
        return page(message_page("Not found", f"No action {name}.", who.viewer()), 404)
    intake = services(request).intake
    try:
        state, _ = visible_rollout(intake, who.caller, rollout_id)
    except NotFound:
        return page(message_page("Not found", f"No rollout {rollout_id}.", who.viewer()), 404)
    reason = " ".join(form.get("reason", "").split())[:500]
    if action.reason_required and not reason:
        problem = f"Say why you {action.label.lower()} it: the reason is required."
        return page(confirm_page(state, action, who.viewer(), problem), 422)
    result = intake.command(rollout_id, action.command, who.caller.name, action.full, reason)
    if result.ignored is not None:
        problem = f"Not done: {result.ignored}"
        return page(confirm_page(result.state, action, who.viewer(), problem, reason), 409)
    return see_other(f"/ui/rollouts/{rollout_id}?done={action.name}")
