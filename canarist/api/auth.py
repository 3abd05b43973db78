"""Bearer tokens: who is calling, what they may do, and in which namespaces.

Tokens live in settings only as SHA-256 hashes (``ApiToken``); a request's token is hashed and
compared in constant time against each. No token, or one that matches none, is a 401 with a
``WWW-Authenticate: Bearer`` challenge; a valid token without the role a route needs is a 403
naming that role and the token's roles. The token's ``name`` is the actor recorded on every
submission and command.

Authentication comes before the body is even parsed: FastAPI reads and parses a route's body
before it solves any dependency, so a caller without a token would learn the body's rules from
a 400 or 422. ``AuthenticatedRoute`` runs each route's ``Requires`` guard first; the guard runs
again as an ordinary dependency, which is what puts the bearer scheme in the OpenAPI schema and
hands the route its ``Caller``.

A rollout outside the token's namespaces is answered exactly as an unknown one (404), so a token
cannot probe which ids exist elsewhere (``visible_rollout``). Submitting or listing in a
namespace the token lacks stays a 403: the caller named that namespace, nothing is revealed.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from canarist.api.handlers import ApiError
from canarist.settings import ApiToken, Role, Settings
from workers.errors import NotFound
from workers.intake import Intake
from workers.state import RolloutState
from workers.store import AuditEvent

_bearer = HTTPBearer(
    auto_error=False,
    description="A token made by `canarist token new`; the server keeps only its SHA-256. Its "
    "roles decide what it may do: read, submit, operate (pause, resume, abort, promote, "
    "retry, approve) or admin.",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True)
class Caller:
    """The authenticated token behind a request."""

    token: ApiToken

    @property
    def name(self) -> str:
        return self.token.name

    @property
    def namespaces(self) -> list[str | None]:
        """What to list for this token: None for every namespace, else each of its own."""
        if "*" in self.token.namespaces:
            return [None]
        return list(dict.fromkeys(self.token.namespaces))

    def require(self, namespace: str) -> None:
        """403 unless the token acts in ``namespace`` (one the caller named, so no leak)."""
        if not self.token.allows(namespace):
            raise ApiError(
                403,
                "forbidden",
                f"token {self.name!r} may not act in namespace {namespace!r} "
                f"(it may in: {', '.join(self.token.namespaces) or 'none'})",
            )

    def require_role(self, role: Role) -> None:
        if not self.token.grants(role):
            raise ApiError(
                403,
                "forbidden",
                f"token {self.name!r} lacks the role {role!r} this needs "
                f"(its roles: {', '.join(self.token.roles)})",
            )


def authenticate(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The request's token, or a 401 naming what is wrong with it."""
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401, "unauthorized", "missing bearer token (Authorization: Bearer ...)", _CHALLENGE
        )
    token = settings.token_for(credentials.credentials)
    if token is None:
        raise ApiError(401, "unauthorized", "invalid bearer token", _CHALLENGE)
    return Caller(token)


class Requires:
    """A dependency: the request's caller, who must hold ``role`` (401, then 403)."""

    def __init__(self, role: Role) -> None:
        self.role = role

    def check(self, request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
        settings: Settings = request.app.state.services.settings
        caller = authenticate(settings, credentials)
        request.state.actor = caller.name
        caller.require_role(self.role)
        return caller

    async def __call__(self, request: Request, credentials: Credentials) -> Caller:
        return self.check(request, credentials)


class AuthenticatedRoute(APIRoute):
    """A route whose ``Requires`` guards run before its body is read, parsed or validated."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        guards = [dep.call for dep in self.dependant.dependencies if isinstance(dep.call, Requires)]

        async def guarded(request: Request) -> Response:
            credentials = await _bearer(request)
            for guard in guards:
                guard.check(request, credentials)
            return await handle(request)

        return guarded


def visible_rollout(
    intake: Intake, caller: Caller, rollout_id: str
) -> tuple[RolloutState, list[AuditEvent]]:
    """The rollout and its trail, or the very 404 of an unknown id when the token's namespaces
    exclude it."""
    state, events = intake.get(rollout_id)
    if not caller.token.allows(state.namespace):
        raise NotFound(f"no rollout {rollout_id}")
    return state, events


Reader = Annotated[Caller, Depends(Requires("read"))]
Submitter = Annotated[Caller, Depends(Requires("submit"))]
Operator = Annotated[Caller, Depends(Requires("operate"))]
