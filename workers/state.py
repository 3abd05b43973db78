"""What the engine knows about one rollout: a frozen record, persisted as JSON by the store.

The state is everything ``engine.step`` needs besides the policy and the observation, so a
worker that loads it can carry on where another left off. Times are Unix seconds (floats) given
by the caller; nothing here reads a clock. The store's revision number is not part of it: the
store owns that, and compares-and-sets on it.

``analysis_due(now)`` tells the task whether to gather an analysis before calling ``step``: the
engine never asks for one through an action (workers/engine's docstring says why).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from analyzer.run import RunTally
from analyzer.verdict import Outcome, Verdict
from workers.spec import RolloutSpec

RECORD_FORMAT = 1
"""What a rollout record says when its spec uses none of the keys below; every release reads it."""
SPEC_KEYS_FORMAT = 2
"""A rollout record whose spec carries a key of ``SPEC_KEYS_SINCE_2`` with a value other than its
default. A release that knows none of them would run the rollout wrongly (compare with the stable
fleet instead of a fresh baseline, alert without saying Git names the version), so it must refuse
the record by name rather than read it; a spec at the defaults leaves the keys out and says 1."""
SPEC_KEYS_SINCE_2: Mapping[str, object] = {"fresh_baseline_selector": "", "from_manifest": False}
PINNED_POLICY_FORMAT = 3
"""A rollout record with ``policy_digest``, its pinned policy (whatever its spec): a release before
pinning would re-read the policy file by name (edited since, perhaps), so it must refuse the
record by name."""
STICKY_FORMAT = 4
"""A rollout record whose traffic is sticky (``spec.traffic.sticky``), whatever else it has: a
release before would read the key as a bad record, or, dropping it, split each user's requests
apart; so it must refuse the record by name. Without sticky the key is left out."""
HOOKS_FORMAT = 5
"""A rollout record with ``hook_due`` (HTTP hooks to call: workers/engine/hooks.py), whatever else
it has: a release without hooks would never call them, so a pre-rollout or confirm-promotion gate
would hold for ever; it must refuse the record by name. Left out (and the format as before) when
None."""
HOOK_KEYS: Mapping[str, object] = {"hook_due": None, "hook_at": None}
AWAITING_APPROVAL_FORMAT = 6
"""A rollout record in phase ``awaiting_approval`` (whatever else it holds: format 6 reads every
key of formats 2 to 5): a release without the manual gate knows no such phase, so it must refuse
the record by name; once approved (or aborted) the record is written in its format before."""
RECORD_FORMATS = frozenset(
    {
        RECORD_FORMAT,
        SPEC_KEYS_FORMAT,
        PINNED_POLICY_FORMAT,
        STICKY_FORMAT,
        HOOKS_FORMAT,
        AWAITING_APPROVAL_FORMAT,
    }
)
POLICY_DIGEST = re.compile(r"[0-9a-f]{64}")  # sha256, hex: the key of a pinned policy's text


class Awaited(StrEnum):
    """What kind of platform change a rollout waits for."""

    STAGE = "stage"  # a stage's asks: a weight, an audience, a size, a switch
    PROMOTE = "promote"  # the new version becoming the stable one
    ROLLBACK = "rollback"  # the stable version restored (an abort, a failure, a supersession)
    REPAIR = "repair"  # a stage re-applied after the platform drifted from it


@dataclass(frozen=True)
class AwaitToken:
    """The platform change in flight: the attempt and stage that asked for it, and what it is.

    ``RolloutState.awaiting`` keeps it as ``format()`` writes it (``"2:3:rollback"``), the
    string stored, compared by the platform's answers and kept in the Kubernetes annotation;
    ``parse`` reads it back, so no module splits the string itself.
    """

    attempt: int
    stage_index: int
    awaited: Awaited

    def format(self) -> str:
        return f"{self.attempt}:{self.stage_index}:{self.awaited.value}"

    @classmethod
    def parse(cls, text: str) -> AwaitToken:
        """The token ``format`` wrote as ``text``; ValueError if it is not one."""
        attempt, stage_index, what = split_stage_token(text, "awaiting", "1:0:stage")
        known = [item.value for item in Awaited]
        if what not in known:
            raise ValueError(f"{text!r} awaits {what!r}, not one of {', '.join(known)}")
        return cls(attempt, stage_index, Awaited(what))


def split_stage_token(text: str, kind: str, example: str) -> tuple[int, int, str]:
    """A stored token ``attempt:stage:what`` (an awaited platform change, a due hook) as its
    three parts; ValueError, naming the ``kind`` and an ``example``, if ``text`` is not one."""
    parts = text.split(":")
    if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
        raise ValueError(f"{text!r} is no {kind} token like {example!r}")
    return int(parts[0]), int(parts[1]), parts[2]


class Phase(StrEnum):
    PENDING = "pending"  # accepted; waits to start (or for the rollout it supersedes)
    PROGRESSING = "progressing"  # walking its stages on its own
    PAUSED = "paused"  # holds until a person promotes, resumes or aborts
    AWAITING_APPROVAL = "awaiting_approval"  # passed; promotes once a person approves
    PROMOTING = "promoting"  # the new version is becoming the stable one
    PROMOTED = "promoted"  # done: the new version is stable
    ABORTING = "aborting"  # rolling back to the stable version
    ABORTED = "aborted"  # rolled back; a person may retry
    FAILED = "failed"  # the platform could not do what was asked; rolled back

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def active(self) -> bool:
        """The canary is out and its stages are in charge (analysis may run)."""
        return self in (Phase.PROGRESSING, Phase.PAUSED, Phase.AWAITING_APPROVAL)


_TERMINAL = frozenset({Phase.PROMOTED, Phase.ABORTED, Phase.FAILED})


@dataclass(frozen=True)
class VerdictSummary:
    """The last look's decision, small enough to keep in the record (events keep the rest)."""

    outcome: Outcome
    reason: str
    decided_by: tuple[str, ...] = ()
    score: float | None = None
    window_start: float | None = None
    window_end: float | None = None
    final: bool = False

    @classmethod
    def of(cls, verdict: Verdict, window: tuple[float, float], final: bool) -> VerdictSummary:
        return cls(
            verdict.outcome,
            verdict.reason,
            tuple(verdict.decided_by),
            verdict.score,
            *window,
            final,
        )


@dataclass(frozen=True)
class AnalysisRequest:
    """One look the engine wants: judge [window_start, window_end]; ``final`` ends a step."""

    rollout_id: str
    attempt: int
    stage_index: int
    window_start: float
    window_end: float
    final: bool


@dataclass(frozen=True)
class RolloutState:
    id: str
    app: str
    namespace: str
    policy: str
    spec: RolloutSpec
    created_at: float
    updated_at: float
    phase: Phase = Phase.PENDING
    attempt: int = 1  # 1 + retries; actions and looks of an earlier attempt are stale
    stage_index: int = 0
    canary_weight: int = 0  # percent of traffic (or replicas) on the new version
    stage_started_at: float | None = None
    stage_ends_at: float | None = None  # a timed pause or scale-down delay ends
    window_start: float | None = None  # analysis window: last traffic change + begin_after
    next_look_at: float | None = None  # next background or in-step look
    last_look_at: float | None = None  # window_end of the last accepted look
    final_look_at: float | None = None  # an analyze stage's last look (moves on extension)
    extensions: int = 0  # inconclusive extensions used in this stage
    stage_failures: int = 0  # FAIL looks tolerated by failure_limit in this stage
    tally: RunTally = field(default_factory=RunTally)
    awaiting: str | None = None  # the platform change in flight: an AwaitToken, formatted
    pause_reason: str | None = None
    abort_reason: str | None = None  # why it is aborting, aborted or failed
    last_verdict: VerdictSummary | None = None
    next_due_at: float | None = None
    supersedes: str | None = None  # the rollout this one replaces, until it stands down
    superseded_by: str | None = None
    policy_digest: str | None = None  # its pinned policy (store.policies); None: read by name
    hook_due: str | None = None  # HTTP hooks to call: "attempt:stage:point" (engine/hooks.py)
    hook_at: float | None = None  # when to call them (again: a confirm_promotion said no)

    @classmethod
    def new(
        cls,
        rollout_id: str,
        *,
        app: str,
        namespace: str,
        policy: str,
        spec: RolloutSpec,
        now: float,
        supersedes: str | None = None,
        policy_digest: str | None = None,
    ) -> RolloutState:
        """A rollout as intake accepts it: PENDING, at the first stage of its first attempt."""
        state = cls(rollout_id, app, namespace, policy, spec, now, now, supersedes=supersedes)
        return replace(state, policy_digest=policy_digest)

    def analysis_due(self, now: float) -> AnalysisRequest | None:
        """The look to gather before calling ``step`` at ``now``, or None if none is due."""
        if not self.phase.active or self.awaiting is not None or self.window_start is None:
            return None
        final = (
            self.phase is Phase.PROGRESSING
            and self.final_look_at is not None
            and now >= self.final_look_at
        )
        final = final and self.hook_due is None  # held at a hook gate: background looks only
        if not final and (self.next_look_at is None or now < self.next_look_at):
            return None
        return AnalysisRequest(
            self.id, self.attempt, self.stage_index, self.window_start, now, final
        )

    def expects(self, request: AnalysisRequest) -> bool:
        """``request`` is the look this state waits for now, not an older or an early one."""
        due_at = self.final_look_at if request.final else self.next_look_at
        return (
            self.phase.active
            and self.awaiting is None
            and request.rollout_id == self.id
            and (request.attempt, request.stage_index) == (self.attempt, self.stage_index)
            and request.window_start == self.window_start
            and request.window_end > (self.last_look_at or float("-inf"))
            and due_at is not None
            and request.window_end >= due_at
        )

    def scheduled(self, now: float, interval: float, watching: bool, poll: float) -> RolloutState:
        """The wake-up times derived: the next look (when the stage is ``watching`` the new
        version every ``interval``), then when anything is next due (``poll`` seconds from
        ``now`` while a platform change is awaited; at least every ``interval`` while paused,
        when the platform is still watched even if the analysis is not)."""
        next_look = final = ends = None
        progressing = self.phase is Phase.PROGRESSING
        if self.phase.active:
            if watching and self.awaiting is None and self.window_start is not None:
                next_look = max(self.window_start, self.last_look_at or 0.0) + interval
            final, ends = self.final_look_at, self.stage_ends_at
        due = [next_look, *((final, ends) if progressing else ())]
        due.append(now + poll if self.awaiting is not None else None)
        waiting = self.phase in (Phase.PAUSED, Phase.AWAITING_APPROVAL)
        due.append(now + interval if waiting else None)
        # a rollout not yet started stays due (a refused command must not strand it)
        due.append(now if self.phase is Phase.PENDING and self.supersedes is None else None)
        next_due = min((at for at in due if at is not None), default=None)
        return replace(
            self,
            next_look_at=next_look,
            final_look_at=final,
            stage_ends_at=ends,
            next_due_at=next_due,
        )

    @property
    def awaited(self) -> AwaitToken | None:
        """``awaiting`` read as its type: which attempt and stage asked for what."""
        return None if self.awaiting is None else AwaitToken.parse(self.awaiting)

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict; ``from_record`` reads it back to an equal state."""
        record: dict[str, Any] = {"format": RECORD_FORMAT}
        for item in fields(self):
            record[item.name] = _dump(getattr(self, item.name))
        spec = record["spec"]
        for key, default in SPEC_KEYS_SINCE_2.items():
            if spec[key] == default:  # left out: the release before reads the record as ever
                del spec[key]
            else:
                record["format"] = SPEC_KEYS_FORMAT
        if self.policy_digest is None:  # left out: the releases before pinning read it as ever
            del record["policy_digest"]
        else:
            record["format"] = PINNED_POLICY_FORMAT
        if spec["traffic"]["sticky"] is None:  # left out: the releases before read it as ever
            del spec["traffic"]["sticky"]
        else:
            record["format"] = STICKY_FORMAT
        for key, default in HOOK_KEYS.items():
            if record[key] == default:  # left out: the releases before hooks read it as ever
                del record[key]
        if self.hook_due is not None:
            record["format"] = HOOKS_FORMAT
        if self.phase is Phase.AWAITING_APPROVAL:  # unknown to the releases before the gate
            record["format"] = AWAITING_APPROVAL_FORMAT
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RolloutState:
        """Read a record written by ``to_record``; raise ValueError naming any bad field."""
        data = dict(record)
        found = data.pop("format", None)
        if found not in RECORD_FORMATS:
            raise ValueError(f"rollout record format {found!r} is not {sorted(RECORD_FORMATS)}")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"rollout record has unknown fields: {', '.join(unknown)}")
        try:
            return cls(**{name: _load(name, value) for name, value in data.items()})
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"bad rollout record: {exc}") from exc


def _dump(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, RolloutSpec):
        return value.to_record()
    if isinstance(value, RunTally | VerdictSummary):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return list(value)
    return value


def _load(name: str, value: Any) -> Any:
    if name == "phase":
        return Phase(value)
    if name == "spec":
        return RolloutSpec.from_record(value)
    if name == "tally":
        return RunTally(**value)
    if name == "policy_digest" and value is not None:
        if not isinstance(value, str) or not POLICY_DIGEST.fullmatch(value):
            raise ValueError(f"policy_digest must be 64 hex digits, not {value!r}")
        return value
    if name == "last_verdict" and value is not None:
        loaded = {**value, "outcome": Outcome(value["outcome"])}
        return VerdictSummary(**{**loaded, "decided_by": tuple(value.get("decided_by", ()))})
    if name in _TIMES:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number of seconds, not {value!r}")
        return float(value)
    expected = _SCALARS.get(name)
    if expected is None or (value is None and name in _OPTIONAL):
        return value
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ValueError(f"{name} must be {expected.__name__}, not {value!r}")
    return value


_TIMES = frozenset(
    {
        "created_at",
        "updated_at",
        "stage_started_at",
        "stage_ends_at",
        "window_start",
        "next_look_at",
        "last_look_at",
        "final_look_at",
        "next_due_at",
        "hook_at",
    }
)
_OPTIONAL = frozenset(
    {"awaiting", "pause_reason", "abort_reason", "supersedes", "superseded_by"}
    | {"last_verdict", "policy_digest", "hook_due"}
)
_SCALARS: dict[str, type] = {
    **dict.fromkeys(("id", "app", "namespace", "policy", "awaiting", "pause_reason"), str),
    **dict.fromkeys(("abort_reason", "supersedes", "superseded_by"), str),
    **dict.fromkeys(("attempt", "stage_index", "canary_weight", "extensions"), int),
    "stage_failures": int,
    "hook_due": str,
}
