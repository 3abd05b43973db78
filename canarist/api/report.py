"""``GET /v1/rollouts/{id}/report``: the rollout report as an HTML page, for people.

Alerts link here, and a person opens the link in a browser, which cannot send a bearer token.
So the route accepts either of two credentials:

- a bearer token with the ``read`` role, checked like every other route: 401 if invalid, and a
  rollout outside its namespaces is a 404, as an unknown one is;
- a signed link, ``?sig=`` = the first 32 hex characters of HMAC-SHA256(report_secret, id), as
  ``workers.notify.notice.report_url`` writes it into alerts when ``report_secret`` is set.

A signature is a read-only capability for one rollout's report: it opens nothing else (no other
rollout, no command, no JSON), it is compared in constant time, and changing ``report_secret``
(CANARIST_REPORT_SECRET) revokes every link at once. It does not expire, as an incident's link
must keep working for its post-mortem; rotate the secret to end them. Without a secret, signed
links are refused and only tokens work. Anything else is a 401 whose JSON says what is wrong.
The check comes before the rollout is looked up, so a caller without credentials cannot learn
which ids exist; then an unknown id is a 404.

The page is rendered on each request from the store and Prometheus (PrometheusSource from the
settings, unless the app was given ``report_source``); it is sent with a Content-Security-Policy
that forbids scripts and every external resource, and is never cached.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials

from analyzer.policy import Policy
from analyzer.sources.base import MetricSource
from analyzer.sources.prometheus import PrometheusSource
from canarist.api.auth import Caller, visible_rollout
from canarist.api.auth import _bearer as bearer_scheme  # one security scheme in the schema
from canarist.api.handlers import ApiError
from canarist.api.routes import ROLLOUTS, services
from canarist.api.telemetry import about_rollout
from canarist.report import render_report
from canarist.settings import Settings
from workers.errors import IntakeError
from workers.intake import Intake
from workers.notify.notice import REPORT_SIGNATURE_CHARS, report_signature
from workers.state import RolloutState

REPORT_TIMEOUT_SECONDS = 5.0  # per Prometheus query: a page should come back while someone waits
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}  # the other routes define it
router = APIRouter()


@router.get(
    ROLLOUTS + "/{rollout_id}/report",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "the report page"},
        **{
            status: {"content": {"application/json": {"schema": _ERROR_SCHEMA}}, "description": why}
            for status, why in (
                (401, "no valid bearer token or signature"),
                (403, "the token lacks the read role"),
                (404, "a rollout that is unknown or outside the token's namespaces"),
                (
                    500,
                    "unreadable_record: the rollout's record cannot be read (its detail says why)",
                ),
                (503, "the state store is unreachable"),
            )
        },
    },
    summary="The rollout report (HTML): why Canarist decided, with charts and every event",
    tags=["rollouts"],
)
def report(
    rollout_id: str,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    sig: Annotated[
        str | None,
        Query(description="signature from an alert's link, instead of a bearer token"),
    ] = None,
) -> HTMLResponse:
    found = services(request)
    caller = _authorised(found.settings, rollout_id, credentials, sig)
    if caller is not None:
        request.state.actor = caller.name
    with about_rollout(rollout_id, caller.name if caller else "signed-link"):
        if caller is not None:
            state, _ = visible_rollout(found.intake, caller, rollout_id)
        else:
            state, _ = found.intake.get(rollout_id)  # 404 when unknown
        policy, problem = rollout_policy(found.intake, state)
        now = found.intake.clock()
        with metric_source(request, found.settings) as source:
            page = render_report(
                found.intake.store, source, policy, rollout_id, now=now, policy_problem=problem
            )
    return HTMLResponse(page, headers=_HEADERS)


def signature_valid(settings: Settings, rollout_id: str, sig: str) -> bool:
    secret = settings.report_secret
    if secret is None or len(sig) != REPORT_SIGNATURE_CHARS:
        return False
    expected = report_signature(secret.get_secret_value(), rollout_id)
    return hmac.compare_digest(expected.encode(), sig.lower().encode())


def _authorised(
    settings: Settings,
    rollout_id: str,
    credentials: HTTPAuthorizationCredentials | None,
    sig: str | None,
) -> Caller | None:
    """The token's caller, None for a valid signature; else a 401 naming what is wrong."""
    token = settings.token_for(credentials.credentials) if credentials else None
    if token is not None:
        caller = Caller(token)
        caller.require_role("read")
        return caller
    if sig is not None and signature_valid(settings, rollout_id, sig):
        return None
    if credentials is not None:
        reason = "invalid bearer token"
    elif sig is not None and settings.report_secret is None:
        reason = "signed report links are disabled on this server (no report_secret is set)"
    elif sig is not None:
        reason = (
            "invalid signature: the link is not for this rollout, was cut short, or the "
            "report secret has changed since the alert was sent"
        )
    else:
        reason = (
            "missing credentials: send 'Authorization: Bearer <token>' or open the signed "
            "link from the alert (…/report?sig=…)"
        )
    raise ApiError(401, "unauthorized", reason, _CHALLENGE)


def rollout_policy(intake: Intake, state: RolloutState) -> tuple[Policy | None, str | None]:
    """The policy the rollout runs under (pinned at submit), or why it cannot be had."""
    try:
        return intake.policy_for(state), None
    except IntakeError as exc:
        return (
            None,
            f"policy {state.policy!r} cannot be loaded, so there are no data charts: {exc}",
        )


@contextmanager
def metric_source(request: Request, settings: Settings) -> Iterator[MetricSource]:
    given: MetricSource | None = getattr(request.app.state, "report_source", None)
    if given is not None:
        yield given
        return
    prometheus = settings.prometheus
    token = prometheus.bearer_token
    with PrometheusSource(
        prometheus.url,
        min(prometheus.timeout_seconds, REPORT_TIMEOUT_SECONDS),
        bearer_token=token.get_secret_value() if token is not None else None,
    ) as source:
        yield source
