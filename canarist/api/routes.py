"""The routes: thin translations between HTTP and intake, with the caller's name as the actor.

Each route checks the token's role before the body is parsed (auth.py) and its namespaces before
intake acts, so a refused request changes nothing; a rollout outside the token's namespaces is a
404, like an unknown one. Routes are plain functions (run in the threadpool), because intake and
the store are synchronous. A rollout's id goes into the request's state and the logging context,
so the access line and every line logged while handling it carry the id.

A command the rollout's phase refuses (resume while progressing, retry after a promote) is still
recorded by the engine as ``command_ignored`` with its actor, so the attempt is audited; the
answer is 409 with the engine's reason, so a script does not mistake it for done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from canarist.api import models
from canarist.api.auth import (
    AuthenticatedRoute,
    Caller,
    Operator,
    Reader,
    Submitter,
    visible_rollout,
)
from canarist.api.handlers import ApiError, error_response
from canarist.api.models import StageLabel
from canarist.api.telemetry import about_rollout, metrics_text
from canarist.settings import Settings
from workers.actions import CommandKind
from workers.errors import StoreUnavailable
from workers.intake import Intake, RolloutJob

ROLLOUTS = "/v1/rollouts"

KEY_HEADER = "Idempotency-Key"
IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        description="the same key always returns the same rollout (also accepted in the body, "
        "as idempotency_key, under the same rules: 1 to 200 visible ASCII characters)",
    ),
]
_WHY = {
    400: "the body is not JSON",
    401: "no bearer token, or an invalid one",
    403: "the token lacks the role this needs, or (submit, list) the namespace it names",
    404: "unknown policy, or a rollout that is unknown or outside the token's namespaces",
    409: "the command does not apply in the rollout's phase (it is recorded), or the rollout "
    "lost a race with another submission",
    413: "the body is larger than the API's limit (api.max_body_bytes, 64 KiB by default)",
    422: "a bad body, header or query, naming each field and why",
    500: "unreadable_record: a rollout's record cannot be read, stored in a format this release "
    "does not read (a newer release's, mid-upgrade) or damaged; the detail names it, and it is "
    "left as it is",
    503: "the state store is unreachable or too slow; retry later (with the same idempotency key)",
}
SELECTORS = """`baseline` and `canary` pick each version's series in Prometheus: one or more label
matchers separated by commas, braces optional, as in `app="checkout",version="v2"`:

    selector = matcher { "," matcher }        at least one matcher
    matcher  = label op value
    label    = [A-Za-z_][A-Za-z0-9_]*
    op       = "=" | "!=" | "=~" | "!~"       (=~ and !~: an anchored RE2 regex)
    value    = "…" or '…'                     (escapes: \\n \\t \\r \\\\ \\" \\')

The two must select different series. Each is stored, and shown, in its canonical form."""
SUBMIT = f"""Queue a rollout of `version` of `app` in `namespace`, judged by `policy`; needs the
`submit` role and the namespace.

{SELECTORS}

A request the client gave up on (a timeout, a dropped connection, a 503 from a slow store) may
still have been carried out: retry it with the same `Idempotency-Key`, which returns the rollout
it made, if any, and never makes a second."""


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": models.ErrorBody, "description": _WHY[status]} for status in statuses}


@dataclass(frozen=True)
class Services:
    """What the routes need, kept on ``app.state.services``."""

    settings: Settings
    intake: Intake
    labels: StageLabel
    health: Callable[[], None]


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


router = APIRouter(route_class=AuthenticatedRoute)
operations = APIRouter()


@router.post(
    ROLLOUTS,
    status_code=202,
    response_model=models.Accepted,
    responses=_errors(400, 401, 403, 404, 409, 413, 422, 500, 503),
    summary="Queue a rollout of a new version",
    description=SUBMIT,
    tags=["rollouts"],
)
def submit(
    job: RolloutJob,
    request: Request,
    response: Response,
    caller: Submitter,
    idempotency_key: IdempotencyHeader = None,
) -> models.Accepted:
    if idempotency_key is not None:
        job = _with_key(job, idempotency_key)
    caller.require(job.namespace)
    found = services(request)
    # A replayed key returns its rollout only for the same job, so the same namespace:
    # intake refuses the key for any other job (422).
    submitted = found.intake.submit(job, caller.name)
    request.state.rollout_id = submitted.rollout_id
    url = f"{ROLLOUTS}/{submitted.rollout_id}"
    response.headers["Location"] = url
    return models.Accepted(
        id=submitted.rollout_id,
        created=submitted.created,
        superseded=submitted.superseded,
        url=url,
    )


def _with_key(job: RolloutJob, key: str) -> RolloutJob:
    """The job with the header's key, validated by the very rules of the body's field."""
    if job.idempotency_key not in (None, key):
        raise ApiError(
            422,
            "invalid_request",
            f"idempotency_key: the body says {job.idempotency_key!r} but the {KEY_HEADER} "
            f"header says {key!r}",
        )
    try:
        return RolloutJob.model_validate({**job.model_dump(), "idempotency_key": key})
    except ValidationError as exc:
        header = ("header", KEY_HEADER)
        errors = [
            {**error, "loc": header if error["loc"] == ("idempotency_key",) else error["loc"]}
            for error in exc.errors()
        ]
        raise RequestValidationError(errors) from exc


@router.get(
    ROLLOUTS,
    response_model=models.RolloutList,
    responses=_errors(401, 403, 422, 503),
    summary="Rollouts, newest first, in the namespaces the token may see",
    description="Needs the `read` role.",
    tags=["rollouts"],
)
def list_rollouts(
    request: Request,
    caller: Reader,
    namespace: Annotated[str | None, Query(description="only this namespace")] = None,
) -> models.RolloutList:
    if namespace is not None:
        caller.require(namespace)
    found = services(request)
    scopes = [namespace] if namespace is not None else caller.namespaces
    # A token scoped to namespaces reads each of them, so another namespace's newest rollouts
    # cannot crowd its own out of the listing.
    states = [state for scope in scopes for state in found.intake.list(scope)]
    states.sort(key=lambda state: (state.created_at, state.id), reverse=True)
    return models.RolloutList(rollouts=[models.summary(state, found.labels) for state in states])


@router.get(
    ROLLOUTS + "/{rollout_id}",
    response_model=models.RolloutDetail,
    responses=_errors(401, 403, 404, 500, 503),
    summary="One rollout: phase, stage, weight, last verdict with evidence, audit events",
    description="Needs the `read` role.",
    tags=["rollouts"],
)
def get_rollout(rollout_id: str, request: Request, caller: Reader) -> models.RolloutDetail:
    found = services(request)
    with about_rollout(rollout_id, caller.name):
        state, events = visible_rollout(found.intake, caller, rollout_id)
        return models.detail(state, events, found.labels)


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


CommandBody = Annotated[models.CommandRequest | None, Body()]


def _command(
    request: Request,
    caller: Caller,
    rollout_id: str,
    kind: CommandKind,
    body: models.CommandRequest | None,
    full: bool = False,
) -> models.RolloutSummary:
    found, reason = services(request), body.reason if body is not None else ""
    with about_rollout(rollout_id, caller.name):
        visible_rollout(found.intake, caller, rollout_id)
        result = found.intake.command(rollout_id, kind, caller.name, full=full, reason=reason)
        if result.ignored is not None:
            raise ApiError(409, "not_applicable", result.ignored)
        return models.summary(result.state, found.labels)


def _command_route(kind: CommandKind, summary: str) -> Callable[[Endpoint], Endpoint]:
    return router.post(
        f"{ROLLOUTS}/{{rollout_id}}/{kind}",
        status_code=202,
        response_model=models.RolloutSummary,
        responses=_errors(400, 401, 403, 404, 409, 413, 422, 500, 503),
        summary=summary,
        description="Needs the `operate` role.",
        tags=["commands"],
    )


@_command_route("abort", "Roll back to the stable version")
def abort(
    rollout_id: str, request: Request, caller: Operator, body: CommandBody = None
) -> models.RolloutSummary:
    return _command(request, caller, rollout_id, "abort", body)


@_command_route("promote", "Pass the current stage (with full, every remaining stage)")
def promote(
    rollout_id: str,
    request: Request,
    caller: Operator,
    body: Annotated[models.PromoteRequest | None, Body()] = None,
) -> models.RolloutSummary:
    full = body.full if body is not None else False
    return _command(request, caller, rollout_id, "promote", body, full)


@_command_route("pause", "Hold at the current stage")
def pause(
    rollout_id: str, request: Request, caller: Operator, body: CommandBody = None
) -> models.RolloutSummary:
    return _command(request, caller, rollout_id, "pause", body)


@_command_route("resume", "Carry on after a pause")
def resume(
    rollout_id: str, request: Request, caller: Operator, body: CommandBody = None
) -> models.RolloutSummary:
    return _command(request, caller, rollout_id, "resume", body)


@_command_route("approve", "Approve the promotion of a rollout awaiting approval")
def approve(
    rollout_id: str, request: Request, caller: Operator, body: CommandBody = None
) -> models.RolloutSummary:
    return _command(request, caller, rollout_id, "approve", body)


@_command_route("retry", "Start an aborted or failed rollout again")
def retry(
    rollout_id: str, request: Request, caller: Operator, body: CommandBody = None
) -> models.RolloutSummary:
    return _command(request, caller, rollout_id, "retry", body)


@operations.get(
    "/healthz",
    response_model=models.Health,
    responses={503: {"model": models.ErrorBody, "description": "the store is unreachable"}},
    tags=["operations"],
)
def healthz(request: Request) -> Response:
    try:
        services(request).health()
    except StoreUnavailable as exc:
        return error_response(503, "store_unavailable", str(exc), headers={"Retry-After": "5"})
    return JSONResponse({"status": "ok"})


@operations.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    tags=["operations"],
)
def metrics() -> Response:
    body, content_type = metrics_text()
    return Response(body, media_type=content_type)
