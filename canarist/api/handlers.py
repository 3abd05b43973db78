"""Every failure leaves the API as ``{"error": code, "detail": sentence}`` with its status.

Errors are translated here, at the edge: intake's and the store's errors keep their own types
(the tree in workers/errors.py) and the routes let them through. A 422 also lists each
bad field as ``problems: [{field, message}]`` and names them in ``detail``, so a person reading
only ``detail`` knows what to fix. A body that is not JSON at all is a 400. A rollout whose
stored record this release cannot read (a newer release's, mid-upgrade) is a 500
``unreadable_record`` naming the record, its format and the formats read, logged in one line.

Every error body is bounded (``error_response``): at most ``MAX_PROBLEMS`` problems, each text
cut to a few hundred bytes of JSON, so a hostile body (thousands of bad fields, a megabyte of
junk echoed in a message) gets an answer of a few KB, never one larger than what it sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from analyzer.errors import CanaristError
from canarist.api.models import ErrorBody, Problem
from workers.errors import (
    Conflict,
    CorruptRecord,
    IntakeError,
    NotFound,
    StoreUnavailable,
    TemporaryError,
    UnknownPolicyError,
)

log = logging.getLogger("canarist.api")

# Most specific first: the first class an error is an instance of decides its answer. The
# classes are those of the trees in analyzer/errors.py and workers/errors.py, bases where one
# answer fits all their subclasses: every intake refusal but an unknown policy is a 422, and
# anything temporary a 503 with Retry-After. The only NotFound a route lets through is a
# rollout's (an outbox item's never reaches the API).
_TRANSLATIONS: list[tuple[type[Exception], int, str]] = [
    (UnknownPolicyError, 404, "unknown_policy"),
    (NotFound, 404, "rollout_not_found"),
    (IntakeError, 422, "invalid_job"),
    (Conflict, 409, "conflict"),
    (CorruptRecord, 500, "unreadable_record"),
    (StoreUnavailable, 503, "store_unavailable"),
    (TemporaryError, 503, "unavailable"),
]
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}
MAX_PROBLEMS_IN_DETAIL = 5
MAX_PROBLEMS = 10
# Bytes of JSON each text may take in an error body, so that no error body exceeds ~4.5 KB.
DETAIL_BYTES, FIELD_BYTES, MESSAGE_BYTES = 600, 100, 240
MAX_ERROR_BYTES = 4608


class ApiError(Exception):
    """Raised by routes for an answer that is not a translated library error (401, 403, ...)."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def error_response(
    status: int,
    code: str,
    detail: str,
    problems: list[Problem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one error shape, bounded whatever the caller sent (see the module docstring)."""
    shown = [
        Problem(field=cut(p.field, FIELD_BYTES), message=cut(p.message, MESSAGE_BYTES))
        for p in (problems or [])[:MAX_PROBLEMS]
    ]
    body = ErrorBody(error=code, detail=cut(detail, DETAIL_BYTES), problems=shown)
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def cut(text: str, limit: int) -> str:
    """``text``, shortened with "…" so that its JSON (escapes and UTF-8 counted) fits ``limit``."""
    if len(text) <= limit and _json_bytes(text) <= limit:
        return text
    kept = text[:limit]
    while kept and (excess := _json_bytes(kept + "…") - limit) > 0:
        kept = kept[: len(kept) - max(1, excess // 6)]  # a character is 1 to 6 bytes of JSON
    return kept + "…"


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def field_path(location: tuple[int | str, ...] | list[int | str]) -> str:
    """``("body", "args", "route")`` -> ``args.route``; a header or query keeps its origin."""
    parts = [str(part) for part in location]
    if parts and parts[0] == "body":
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


def validation_problems(errors: Any) -> list[Problem]:
    problems = []
    for error in errors:
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "extra_forbidden":
            message = "unknown field (not allowed)"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(Problem(field=field_path(tuple(error.get("loc", ()))), message=message))
    return problems


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the one JSON shape."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.detail, headers=exc.headers)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if broken is not None:
            reason = (broken.get("ctx") or {}).get("error", "JSON decode error")
            where = broken.get("loc", ("body", 0))[-1]
            detail = f"the body is not valid JSON: {reason} (at character {where})"
            return error_response(400, "bad_request", detail)
        problems = validation_problems(errors)
        shown = "; ".join(f"{p.field}: {p.message}" for p in problems[:MAX_PROBLEMS_IN_DETAIL])
        more = len(problems) - MAX_PROBLEMS_IN_DETAIL
        detail = shown + (f"; and {more} more" if more > 0 else "")
        return error_response(422, "invalid_request", detail, problems)

    async def on_canarist(request: Request, exc: Exception) -> JSONResponse:
        for kind, status, code in _TRANSLATIONS:
            if isinstance(exc, kind):
                headers = None
                if isinstance(exc, TemporaryError):
                    headers = {"Retry-After": str(max(1, round(exc.wait_seconds())))}
                elif status >= 500:
                    log.error("%s: %s", code, exc)
                return error_response(status, code, str(exc), headers=headers)
        log.error("unexpected %s: %s", type(exc).__name__, exc, exc_info=exc)
        return error_response(500, "internal_error", str(exc))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "internal error; see the API's log")

    app.add_exception_handler(ApiError, on_problem)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(CanaristError, on_canarist)
    app.add_exception_handler(Exception, on_unexpected)
