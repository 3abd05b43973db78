"""The messages between the pure engine and the task: observations in, actions out.

Observations are what the task tells ``engine.step``: time passed, the platform is ready or failed,
an analysis look, a person's command, a newer revision. Actions are what the engine asks of the
world, as frozen data; the task carries them out.

Platform actions are declarative and idempotent ("set weight to 25", never "add 5"): applying one
twice, or re-applying it after a crash between save and act, does no harm. That is what lets the
engine re-assert the actions it is waiting on at every wake-up instead of needing an outbox for
them. Platform actions name no version or selector: the task applies them to the rollout whose
new state it just saved (``RolloutState.spec``).

``RecordEvent`` is a line of the audit trail: the compare-and-set save that writes the step's new
state appends its events to the rollout's event stream in the store (stepping.py), so a step is
saved with its events or not at all; events never go through the outbox. ``Notify`` and
``Release`` are self-contained so the store's outbox can deliver them later, once, with retries
(delivery.py); ``Release`` hands the app's single rollout lane to the rollout that superseded
this one. ``Schedule`` says when the engine next wants to be woken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from analyzer.policy.hooks import HookPoint
from analyzer.verdict import Outcome, Verdict
from workers.state import AnalysisRequest

NotifyKind = Literal[
    "aborted", "promoted", "paused", "failed", "started", "stage", "awaiting_approval"
]
"""A notice's kind; ``started``, ``stage`` and ``awaiting_approval`` came with outbox format 3
(workers/store/records.py), which the releases before do not read."""
CommandKind = Literal["abort", "promote", "pause", "resume", "retry", "approve"]


class EventKind(StrEnum):
    """Every kind of audit event Canarist writes: the one list, which the engine emits and every
    reader (metrics, delivery, the API, the report, the CLI) branches on.

    The values are stored in the audit trail and shown to people: never change one. A stored
    kind this release does not know (a newer release's, mid-upgrade) is read as its plain
    string (``event_kind``): it is shown as written and matches no member here.
    """

    SUBMITTED = "submitted"  # intake: a door created the rollout
    PHASE = "phase"  # the phase changed (data: from, to)
    STAGE = "stage"  # the stage cursor moved (data: label)
    PLATFORM_READY = "platform_ready"  # a stage's platform change is live
    PLATFORM_DRIFT = "platform_drift"  # the platform no longer matches: re-applied
    ANALYSIS = "analysis"  # a look (data: outcome, score, window, verdict)
    EXTENDED = "extended"  # an analyze stage's last look did not pass: one more window
    LOOKS_STOPPED = "looks_stopped"  # paused with queries failing: no looks until resumed
    ROLLBACK_RETRY = "rollback_retry"  # the rollback is not done: asked again
    ROLLED_BACK = "rolled_back"  # the rollback after a platform failure is complete
    COMMAND_IGNORED = "command_ignored"  # a person's command that does not apply, and why
    SUPERSEDED = "superseded"  # a newer revision waits for this one to stand down
    SUPERSEDE_IGNORED = "supersede_ignored"  # a second successor: the first one keeps the lane
    RELEASE = "release"  # the lane is handed to the successor
    ALERT_UNDELIVERED = "alert_undelivered"  # delivery: a notice given up on a route
    UNREADABLE_EVENT = "unreadable_event"  # the store: an event this release cannot read
    HOOK = "hook"  # HTTP hooks answered (data: point, hooks: HookCall records, passed)
    SYNTHETIC_LOAD = "synthetic_load"  # canarist load: what it sent (data: rate, sent, errors)


def event_kind(stored: str) -> EventKind | str:
    """A stored event's kind: its member, or the plain string when this release does not know
    it (never an error: one newer event must not hide a rollout's trail)."""
    try:
        return EventKind(stored)
    except ValueError:
        return stored


@dataclass(frozen=True)
class Tick:
    """Time passed; nothing else is known."""


@dataclass(frozen=True)
class PlatformReady:
    """The platform did what the state awaits; ``token`` is ``state.awaiting`` when asked."""

    token: str


@dataclass(frozen=True)
class PlatformFailed:
    """The platform cannot do it (progress deadline, crash-looping pods); with ``token`` None
    the workload went unhealthy whatever was asked."""

    reason: str
    token: str | None = None


@dataclass(frozen=True)
class PlatformDrifted:
    """The platform no longer matches what the rollout applied and no change is awaited (a
    router restarted, an object edited by hand); ``detail`` says what differs."""

    detail: str


@dataclass(frozen=True)
class AnalysisResult:
    """The verdict of the look ``state.analysis_due`` asked for."""

    request: AnalysisRequest
    verdict: Verdict


@dataclass(frozen=True)
class ManualCommand:
    """A person's command, with their name for the audit trail."""

    kind: CommandKind
    actor: str
    full: bool = False  # promote: skip every remaining stage and its analysis
    reason: str = ""


@dataclass(frozen=True)
class Superseded:
    """A newer revision of the same app was submitted: stand down for it."""

    by_id: str


@dataclass(frozen=True)
class Released:
    """The rollout this one supersedes has stood down: the app's lane is free."""

    predecessor_id: str


@dataclass(frozen=True)
class HookCall:
    """One hook's answer: PASS (2xx), FAIL (another status, a timeout, no answer after its
    retries) or, for an analysis hook that says so in its body, INCONCLUSIVE."""

    name: str
    outcome: Outcome
    reason: str
    status: int | None = None  # the last HTTP status; None: no answer
    attempts: int = 1
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "outcome": self.outcome.value}


@dataclass(frozen=True)
class HookResult:
    """The answers of the hooks ``state.hook_due`` asked for (``token`` is it when asked)."""

    token: str
    point: HookPoint
    calls: tuple[HookCall, ...]


Observation = (
    Tick
    | PlatformReady
    | PlatformFailed
    | PlatformDrifted
    | AnalysisResult
    | ManualCommand
    | Superseded
    | Released
    | HookResult
)


@dataclass(frozen=True)
class Match:
    """One audience in the form every router understands: a request header or a cookie."""

    kind: Literal["header", "cookie"]
    name: str
    value: str
    regex: bool = False


@dataclass(frozen=True)
class EnsureCanary:
    """The new version exists beside the stable one, with no traffic until told otherwise."""


@dataclass(frozen=True)
class SetTraffic:
    """Send ``weight`` percent of all requests, and every request matching ``match``, to it."""

    weight: int
    match: tuple[Match, ...] = ()


@dataclass(frozen=True)
class ScaleNew:
    """Run the new version at ``percent`` of the stable size or at ``replicas`` (exactly one)."""

    percent: int | None = None
    replicas: int | None = None


@dataclass(frozen=True)
class SwitchActive:
    """Blue-green: the active service sends every request to the new version, at full size."""


@dataclass(frozen=True)
class ScaleDownOld:
    """Blue-green: the old side, kept for an instant switch-back, is scaled down."""


@dataclass(frozen=True)
class Promote:
    """The new version becomes the stable one everywhere; the canary's extra parts go away."""


@dataclass(frozen=True)
class Rollback:
    """Restore the stable version: traffic back to it first, then scale the new version down.

    One action, because the order matters and only the platform can wait between the two.
    ``switch_back`` says the active service already points at the new version (blue-green after
    the switch): switching it back is instant while the old side still runs.
    """

    reason: str
    switch_back: bool = False


@dataclass(frozen=True)
class Notify:
    """An alert for people, delivered once per transition (``dedupe_key``) by the outbox;
    ``occurred_at`` is when the engine decided (None only in an outbox item written before
    format 2, whose time delivery recovers from its dedupe key and the audit trail)."""

    kind: NotifyKind
    rollout_id: str
    app: str
    namespace: str
    version: str
    reason: str
    routes: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str = ""
    occurred_at: float | None = None


@dataclass(frozen=True)
class RecordEvent:
    """One line of the audit trail: what happened, who did it, and the evidence; saved with the
    state it led to, in the store's event stream."""

    kind: str
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)
    actor: str | None = None


@dataclass(frozen=True)
class Schedule:
    """Wake the engine for this rollout at ``at`` (Unix seconds; may be in the past: now)."""

    at: float


@dataclass(frozen=True)
class Release:
    """The app's lane is free: the task tells ``successor_id`` with a ``Released`` observation."""

    successor_id: str


PlatformAction = (
    EnsureCanary | SetTraffic | ScaleNew | SwitchActive | ScaleDownOld | Promote | Rollback
)
Action = PlatformAction | Notify | RecordEvent | Schedule | Release

_TYPES: dict[str, type[Any]] = {
    "ensure_canary": EnsureCanary,
    "set_traffic": SetTraffic,
    "scale_new": ScaleNew,
    "switch_active": SwitchActive,
    "scale_down_old": ScaleDownOld,
    "promote": Promote,
    "rollback": Rollback,
    "notify": Notify,
    "record_event": RecordEvent,
    "schedule": Schedule,
    "release": Release,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def action_record(action: Action) -> dict[str, Any]:
    """A JSON-safe dict for the outbox and logs: ``{"type": "set_traffic", "weight": 25, ...}``."""
    record = dataclasses.asdict(action)
    for key, value in record.items():
        if isinstance(value, tuple):
            record[key] = list(value)
        elif isinstance(value, Mapping):
            record[key] = dict(value)
    return {"type": _NAMES[type(action)], **record}


def action_from_record(record: Mapping[str, Any]) -> Action:
    """The inverse of ``action_record``; raises ValueError on an unknown type or field."""
    fields = dict(record)
    name = fields.pop("type", None)
    cls = _TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown action type {name!r}; known: {', '.join(sorted(_TYPES))}")
    if "match" in fields:
        fields["match"] = tuple(Match(**rule) for rule in fields["match"])
    if "routes" in fields:
        fields["routes"] = tuple(fields["routes"])
    try:
        action: Action = cls(**fields)
    except TypeError as exc:
        raise ValueError(f"bad {name} action: {exc}") from exc
    return action
