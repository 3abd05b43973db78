"""What the API says: response bodies built from the frozen RolloutState and its audit trail.

The request body of ``POST /v1/rollouts`` is intake's own ``RolloutJob`` (extra="forbid"), so
the API and the Celery client validate a job the same way; the models here only describe
answers. Times go out as RFC 3339 in UTC, not the Unix seconds the state keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers.actions import EventKind
from workers.state import RolloutState, VerdictSummary
from workers.store import AuditEvent

StageLabel = Callable[[RolloutState], "tuple[str | None, int | None]"]
"""The label of a rollout's current stage and the plan's number of stages, when known."""


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class CommandRequest(BaseModel):
    """The optional body of a command: why, for the audit trail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(default="", max_length=500, description="recorded with the command")


class PromoteRequest(CommandRequest):
    full: bool = Field(
        default=False, description="skip every remaining stage and its analysis, not just this one"
    )


class Problem(Answer):
    field: str = Field(description="dotted path of the field in the body, header or query")
    message: str


class ErrorBody(Answer):
    error: str = Field(description="a stable code: unauthorized, invalid_request, not_found, ...")
    detail: str = Field(description="what went wrong, for a person")
    problems: list[Problem] = Field(default_factory=list, description="422: one per bad field")


class LastVerdict(Answer):
    outcome: str = Field(description="pass, inconclusive or fail")
    reason: str
    decided_by: list[str] = Field(description="the metrics behind the outcome")
    score: float | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    final: bool = Field(description="the look that ended its stage")
    evidence: dict[str, Any] | None = Field(
        default=None,
        description="the full verdict (every metric's judgement) when the audit trail holds "
        "it for this look; only in GET /v1/rollouts/{id}",
    )


class RolloutSummary(Answer):
    id: str
    app: str
    namespace: str
    version: str
    image: str
    platform: str
    policy: str
    policy_digest: str | None = Field(
        description="sha256 of the policy the rollout pinned at submit and runs under to the end "
        "(GET /v1/policies/{name} shows the file's now); null for a rollout submitted before "
        "pinning, which reads its policy file as it is"
    )
    phase: str
    terminal: bool = Field(description="promoted, aborted or failed: nothing more will happen")
    attempt: int
    stage_index: int = Field(description="0-based index of the current stage")
    stage_label: str | None = Field(description="the stage as the policy's plan names it")
    stage_count: int | None = Field(description="stages in the plan, when the policy loads")
    canary_weight: int = Field(description="percent of traffic (or replicas) on the new version")
    last_verdict: LastVerdict | None
    pause_reason: str | None
    abort_reason: str | None
    supersedes: str | None
    superseded_by: str | None
    created_at: datetime
    updated_at: datetime
    next_due_at: datetime | None


class Event(Answer):
    id: str
    revision: int
    at: datetime
    kind: str
    message: str
    actor: str | None = Field(description="the token's name for a manual action, else null")
    data: dict[str, Any]


class RolloutDetail(RolloutSummary):
    baseline: str = Field(
        description="label matchers of the series the canary is compared with: the stable "
        "version's, or only the fresh baseline's (analysis.baseline fresh)"
    )
    compared_with: str = Field(
        default="the stable fleet",
        description="which baseline: the stable fleet, or a fresh baseline started with the canary",
    )
    canary: str = Field(description="label matchers of the new version")
    args: dict[str, str]
    events: list[Event] = Field(description="the audit trail, oldest first")


class RolloutList(Answer):
    rollouts: list[RolloutSummary]


class Accepted(Answer):
    id: str = Field(description="the rollout's id")
    created: bool = Field(description="false when the idempotency key named an earlier rollout")
    superseded: str | None = Field(description="the app's rollout this one replaces")
    url: str = Field(description="where to follow it")


class PolicySummary(Answer):
    name: str = Field(description="the file's stem: what a rollout's `policy` names")
    digest: str = Field(description="sha256 of the file's bytes, in hex")
    modified_at: datetime = Field(description="when the file was last modified")
    strategy: str | None = Field(description="canary, rolling, bluegreen or targeted; null when "
                                 "the policy does not load")  # fmt: skip
    metrics: list[str] = Field(description="the metrics' names, in the policy's order")
    error: str | None = Field(
        description="why the policy does not load (file, line, field); null when it does"
    )


class PolicyList(Answer):
    policies: list[PolicySummary]


class PolicyDetail(PolicySummary):
    text: str = Field(description="the YAML as the server reads it")


class Health(Answer):
    status: str


def moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def summary(state: RolloutState, label: StageLabel) -> RolloutSummary:
    return RolloutSummary(**_summary_fields(state, label, None))


def detail(state: RolloutState, events: Sequence[AuditEvent], label: StageLabel) -> RolloutDetail:
    spec = state.spec
    return RolloutDetail(
        **_summary_fields(state, label, latest_evidence(events)),
        baseline=spec.compared_selector,
        compared_with=spec.compared_with(),
        canary=spec.canary_selector,
        args=spec.args_map,
        events=[
            Event(
                id=event.id,
                revision=event.revision,
                at=datetime.fromtimestamp(event.at, tz=UTC),
                kind=event.kind,
                message=event.message,
                actor=event.actor,
                data=dict(event.data),
            )
            for event in events
        ],
    )


def latest_evidence(events: Sequence[AuditEvent]) -> dict[str, Any] | None:
    """The full verdict of the latest look, if an event of that look's step carries it.

    The engine records a look as an ``analysis`` event and, when the look aborts or pauses the
    rollout, puts the whole verdict in that event's ``data.verdict``. Evidence is taken only
    from the latest look's step, so a passing look never shows an older look's evidence.
    """
    looks = [event for event in events if event.kind == EventKind.ANALYSIS or _verdict_of(event)]
    if not looks:
        return None
    revision = looks[-1].revision
    carried = [_verdict_of(event) for event in looks if event.revision == revision]
    return next((verdict for verdict in reversed(carried) if verdict), None)


def _verdict_of(event: AuditEvent) -> dict[str, Any] | None:
    verdict = event.data.get("verdict")
    return verdict if isinstance(verdict, dict) and "metrics" in verdict else None


def _last_verdict(
    summary: VerdictSummary | None, evidence: dict[str, Any] | None
) -> LastVerdict | None:
    if summary is None:
        return None
    return LastVerdict(
        outcome=summary.outcome.value,
        reason=summary.reason,
        decided_by=list(summary.decided_by),
        score=summary.score,
        window_start=moment(summary.window_start),
        window_end=moment(summary.window_end),
        final=summary.final,
        evidence=evidence,
    )


def _summary_fields(
    state: RolloutState, label: StageLabel, evidence: dict[str, Any] | None
) -> dict[str, Any]:
    stage_label, stage_count = label(state)
    return {
        "id": state.id,
        "app": state.app,
        "namespace": state.namespace,
        "version": state.spec.version,
        "image": state.spec.image,
        "platform": state.spec.platform,
        "policy": state.policy,
        "policy_digest": state.policy_digest,
        "phase": state.phase.value,
        "terminal": state.phase.terminal,
        "attempt": state.attempt,
        "stage_index": state.stage_index,
        "stage_label": stage_label,
        "stage_count": stage_count,
        "canary_weight": state.canary_weight,
        "last_verdict": _last_verdict(state.last_verdict, evidence),
        "pause_reason": state.pause_reason,
        "abort_reason": state.abort_reason,
        "supersedes": state.supersedes,
        "superseded_by": state.superseded_by,
        "created_at": moment(state.created_at),
        "updated_at": moment(state.updated_at),
        "next_due_at": moment(state.next_due_at),
    }
