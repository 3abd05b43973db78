"""What a rollout wants of the cluster, persisted on the objects themselves.

A worker may restart between ``apply`` and ``readiness`` (tasks.py polls readiness before it
re-asserts, possibly in a fresh process), so nothing lives in memory: every ``apply`` folds its
action into ``Desired`` and writes it as the ``canarist.dev/desired`` annotation of the canary
Deployment, which Canarist owns; ``readiness`` reads it back and compares it with the world.
``Baseline`` is the stable Deployment as the rollout found it (size, version label, images),
written once per rollout as ``canarist.dev/baseline``: a rolling or blue-green abort restores
that size, and a promotion that failed half-way restores that template.

Every object Canarist creates carries ``app.kubernetes.io/managed-by: canarist``; every object it
creates or changes carries ``canarist.dev/rollout`` and ``canarist.dev/attempt`` labels and its
own part of the desired state as ``canarist.dev/desired``. Objects it only changes (the stable
Deployment and Service, the HTTPRoute) do not get ``managed-by``: Helm and Argo CD read that
label to decide who owns an object, and claiming the user's objects would break their upgrades.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

from analyzer.policy.checks import FRESH_BASELINE_MAX_WEIGHT
from analyzer.policy.strategy import StrategyType
from analyzer.policy.traffic import Router
from workers.actions import (
    EnsureCanary,
    Match,
    PlatformAction,
    Promote,
    Rollback,
    ScaleDownOld,
    ScaleNew,
    SetTraffic,
    SwitchActive,
)
from workers.platforms.base import baseline_share

MANAGED_BY = "app.kubernetes.io/managed-by"
ROLLOUT = "canarist.dev/rollout"
ATTEMPT = "canarist.dev/attempt"
DESIRED = "canarist.dev/desired"
BASELINE = "canarist.dev/baseline"
ROLE = "canarist.dev/role"  # canary pods: see workloads.py; fresh baseline pods: fresh_baseline.py
Mode = Literal["progress", "promote", "rollback"]


class Sizing(Protocol):
    """The part of a TrafficRouter that sizes the canary for a split (router.py)."""

    name: Router

    def canary_replicas(self, stable: int, weight: int, match: tuple[Match, ...]) -> int: ...


@dataclass(frozen=True)
class Baseline:
    """The stable Deployment when the rollout first touched the cluster."""

    replicas: int
    version: str  # the stable pod template's version label ("" when it has none)
    images: dict[str, str] = field(default_factory=dict)
    paused: bool = False  # a paused Deployment: promotion unpauses it, then pauses it (held.py)


@dataclass(frozen=True)
class Desired:
    """One rollout attempt's wish, folded from every action applied so far."""

    rollout: str
    attempt: int
    token: str | None  # state.awaiting when last applied: readiness of an older ask is NotYet
    stable_replicas: int  # the stable's size: the baseline's, less a rolling batch, 0 once retired
    mode: Mode = "progress"
    weight: int = 0
    match: tuple[Match, ...] = ()
    canary_replicas: int = 0
    active: Literal["stable", "canary"] = "stable"  # blue-green: where the active Service points
    stable_touched: bool = False  # the rollout scaled or re-templated the stable Deployment

    def folded(
        self,
        action: PlatformAction,
        baseline: Baseline,
        strategy: StrategyType,
        router: Sizing,
        fresh: bool = False,
    ) -> Desired:
        """This wish after ``action``: declarative, so folding one twice changes nothing.
        ``fresh``: a fresh baseline of the canary's size takes requests too (replica counts)."""
        size = baseline.replicas
        match action:
            case SetTraffic(weight, rules):
                canary = router.canary_replicas(size, weight, rules)
                if fresh and router.name == Router.REPLICAS and baseline_share(weight, fresh):
                    canary = replicas_for_weight(size, weight, fresh=True)
                return replace(self, weight=weight, match=rules, canary_replicas=canary)
            case ScaleNew(percent, count):
                canary = math.ceil(size * percent / 100) if percent is not None else count or 0
                if strategy != StrategyType.ROLLING:
                    return replace(self, canary_replicas=canary)
                canary = min(canary, size)
                weight = round(100 * canary / size) if size else 100
                return replace(
                    self,
                    canary_replicas=canary,
                    stable_replicas=size - canary,
                    weight=weight if router.name != Router.REPLICAS else self.weight,
                    stable_touched=True,
                )
            case SwitchActive():
                return replace(self, active="canary")
            case ScaleDownOld():
                return replace(self, stable_replicas=0, stable_touched=True)
            case Promote():
                return replace(self, mode="promote", stable_touched=True)
            case Rollback():
                return replace(self, mode="rollback")
            case EnsureCanary():
                return self
        raise TypeError(f"not a platform action: {action!r}")

    def describe(self) -> str:
        """The wish in a few words, for a NotYet that says what is not applied."""
        if self.mode != "progress":
            return f"a {self.mode}"
        parts = [f"weight {self.weight}%", f"{self.canary_replicas} canary pod(s)"]
        parts += [f"{rule.kind} {rule.name}" for rule in self.match]
        parts += ["the active Service on the canary"] if self.active == "canary" else []
        return ", ".join(parts)

    def same_wish(self, other: Desired | None) -> bool:
        """Equal but for the token: a re-assert, not a transition."""
        return other is not None and replace(other, token=self.token) == self

    def to_json(self) -> str:
        record = asdict(self)
        record["match"] = [asdict(rule) for rule in self.match]
        return json.dumps(record, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Desired | None:
        """None when absent or unreadable (written by another version): the next apply rewrites."""
        try:
            record = json.loads(text or "")
            record["match"] = tuple(Match(**rule) for rule in record.get("match", ()))
            return cls(**record)
        except (ValueError, TypeError, AttributeError):
            return None


def replicas_for_weight(stable: int, weight: int, fresh: bool = False) -> int:
    """The replicas router: canary pods beside an untouched stable so that they take ``weight``
    percent of the pods, ceil(stable * w / (100 - w)), at most the stable's size. Without touching
    the stable Deployment no more than an even split can be expressed: 50 and above run the canary
    at the stable's size. With a ``fresh`` baseline of the canary's size beside them (weights up
    to 50): ceil(stable * w / (100 - 2w)), at most the stable's size (a third each)."""
    if weight <= 0:
        return 0
    if fresh and weight < FRESH_BASELINE_MAX_WEIGHT:
        return min(stable, math.ceil(stable * weight / (100 - 2 * weight)))
    if fresh:
        return stable
    if weight >= 50:
        return stable
    return min(stable, math.ceil(stable * weight / (100 - weight)))


def sized_for_router(stable: int, weight: int, match: tuple[Match, ...]) -> int:
    """A router splits requests, pods only serve them: ceil(stable * w / 100) canary pods, and at
    least one while any request (a weight or a matched audience) reaches the canary."""
    needed = math.ceil(stable * weight / 100)
    return max(needed, 1 if weight > 0 or match else 0)


def baseline_json(baseline: Baseline) -> str:
    return json.dumps(asdict(baseline), sort_keys=True, separators=(",", ":"))


def baseline_from_json(text: str | None) -> Baseline | None:
    try:
        return Baseline(**json.loads(text or ""))
    except (ValueError, TypeError):
        return None


def label_value(text: str) -> str:
    """``text`` as a label value (63 characters at most: a long id keeps a hash of the rest)."""
    if len(text) <= 63:
        return text
    return f"{text[:50]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def stamp(rollout: str, attempt: int, desired: Any, owned: bool) -> dict[str, Any]:
    """The metadata patch that marks an object as written by this rollout attempt."""
    labels = {ROLLOUT: label_value(rollout), ATTEMPT: str(attempt)}
    if owned:
        labels[MANAGED_BY] = "canarist"
    text = desired if isinstance(desired, str) else json.dumps(desired, sort_keys=True)
    return {"labels": labels, "annotations": {DESIRED: text}}


def annotation(obj: dict[str, Any] | None, key: str) -> str | None:
    if obj is None:
        return None
    value = (obj.get("metadata", {}).get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def owned_by_canarist(obj: dict[str, Any]) -> bool:
    return (obj.get("metadata", {}).get("labels") or {}).get(MANAGED_BY) == "canarist"


def stamped(obj: dict[str, Any], stamp_patch: dict[str, Any]) -> bool:
    """The object already carries these labels and annotations."""
    metadata = obj.get("metadata", {})
    for key in ("labels", "annotations"):
        present = metadata.get(key) or {}
        if any(present.get(name) != value for name, value in stamp_patch[key].items()):
            return False
    return True
