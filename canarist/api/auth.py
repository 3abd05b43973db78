"""Bearer tokens: who is calling, and which namespaces they may act in.

Tokens live in settings only as SHA-256 hashes (``ApiToken``); a request's token is hashed and
compared in constant time against each. No token, or one that matches none, is a 401 with a
``WWW-Authenticate: Bearer`` challenge; a valid token used outside its namespaces is a 403. The
token's ``name`` is the actor recorded on every submission and command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from canarist.api.handlers import ApiError
from canarist.settings import ApiToken, Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="A token made by `canarist token new`; the server keeps only its SHA-256.",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


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
        if not self.token.allows(namespace):
            raise ApiError(
                403,
                "forbidden",
                f"token {self.name!r} may not act in namespace {namespace!r} "
                f"(it may in: {', '.join(self.token.namespaces) or 'none'})",
            )


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The request's token, or a 401 naming what is wrong with it."""
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401, "unauthorized", "missing bearer token (Authorization: Bearer ...)", _CHALLENGE
        )
    settings: Settings = request.app.state.services.settings
    token = settings.token_for(credentials.credentials)
    if token is None:
        raise ApiError(401, "unauthorized", "invalid bearer token", _CHALLENGE)
    request.state.actor = token.name
    return Caller(token)


Authenticated = Annotated[Caller, Depends(caller)]
