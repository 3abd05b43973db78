"""What the local platform wants for one app, and the pure decisions that get it there.

An app's record (record.py) holds the desired state and what runs. Actions change
only the desired part (``transition``); convergence (``settle``, ``missing``, ``route``) is
decided here from what was observed, and platform.py carries it out. Keeping the decisions pure
keeps the order that matters testable without processes:

- traffic reaches an instance only once it answered /healthz, and a pool a switch points at
  only once all of it did;
- an instance no longer wanted is retired only when every wanted instance is up (so capacity
  never drops while a rolling batch, a promotion or a rollback is under way), is removed from
  the router first, and is stopped once NGINX serves the configuration without it;
- a dead instance is never replaced behind the engine's back: it is reported (``assess``) so
  the rollout rolls back; ``register`` replaces dead stable instances when a person asks.

Rollout order: an action of a rollout older than the owner (an earlier attempt of the same
rollout, or a rollout created before the owner) is refused with ``StaleRolloutError`` (a
``PlatformError``) and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

from analyzer.policy.checks import FRESH_BASELINE_MAX_WEIGHT
from analyzer.policy.strategy import StrategyType
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
from workers.platforms.base import (
    Failed,
    NotYet,
    PlatformError,
    Readiness,
    Ready,
    baseline_share,
)
from workers.platforms.local.nginx import AppRoute
from workers.platforms.local.record import (
    SIDES,
    AppRecord,
    Instance,
    LocalRelease,
    LocalTraffic,
    Owner,
)
from workers.state import Phase, RolloutState

PREVIEW_HEADER = "x-canarist-preview"
"""A request with this header (value ``PREVIEW_VALUE``) reaches the new version whatever the
weight, like Kubernetes' preview Service: how synthetic load (workers/load/) reaches a preview."""
PREVIEW_VALUE = "1"
PREVIEW_MATCH = Match("header", PREVIEW_HEADER, PREVIEW_VALUE)


class StaleRolloutError(PlatformError):
    """An action of an older rollout (or attempt) than the one that owns the app: ignored."""


def is_older(rollout: RolloutState, owner: Owner) -> bool:
    if rollout.id == owner.rollout_id:
        return rollout.attempt < owner.attempt
    return rollout.created_at < owner.created_at


def owns(record: AppRecord, rollout: RolloutState) -> bool:
    owner = record.owner
    return owner is not None and (owner.rollout_id, owner.attempt) == (rollout.id, rollout.attempt)


def claim(record: AppRecord, rollout: RolloutState, what: str) -> AppRecord:
    """``record`` owned by ``rollout``; StaleRolloutError if a newer rollout owns it."""
    owner = record.owner
    if owns(record, rollout):
        return record
    if owner is not None and is_older(rollout, owner):
        raise StaleRolloutError(
            f"{what} of rollout {rollout.id} (attempt {rollout.attempt}) ignored: "
            f"{owner.rollout_id} (attempt {owner.attempt}) is newer and owns "
            f"{record.namespace}/{record.app} on the local platform"
        )
    mine = Owner(rollout.id, rollout.attempt, rollout.created_at, rollout.spec.strategy)
    if owner is not None and owner.rollout_id == rollout.id:
        return replace(record, owner=mine)  # a retry: the earlier attempt has rolled back
    return replace(record, owner=mine, traffic=LocalTraffic(), promoting=False, previous=None)


def transition(record: AppRecord, rollout: RolloutState, action: PlatformAction) -> AppRecord:
    """The desired state after ``action``; nothing is started or stopped here."""
    return _fresh_baseline(_transition(record, rollout, action), rollout)


def _fresh_baseline(record: AppRecord, rollout: RolloutState) -> AppRecord:
    """With analysis.baseline fresh: instances of the stable version beside the canary's, as many
    and started with them, while the canary's weight leaves the stable a share (up to 50)."""
    canary, traffic, stable = record.canary, record.traffic, record.stable
    running = rollout.spec.fresh_baseline and canary is not None and not record.promoting
    wanted = None
    if running and traffic.mode == "split" and traffic.weight <= FRESH_BASELINE_MAX_WEIGHT:
        assert canary is not None  # running says so
        wanted = LocalRelease(stable.version, stable.command, canary.count, rollout.id)
    return record if record.baseline == wanted else replace(record, baseline=wanted)


def _transition(record: AppRecord, rollout: RolloutState, action: PlatformAction) -> AppRecord:
    replicas, rolling = record.replicas, rollout.spec.strategy == StrategyType.ROLLING
    match action:
        case EnsureCanary():
            return _ensure_canary(record, rollout)
        case SetTraffic(weight, rules):
            return replace(
                _ensure_canary(record, rollout),
                traffic=LocalTraffic("split", weight, rules, rollout.spec.traffic.sticky),
            )
        case ScaleNew(percent, count):
            wanted = count if count is not None else math.ceil((percent or 0) * replicas / 100)
            wanted = max(1, min(wanted, replicas) if rolling else wanted)
            record = _with_canary_count(_ensure_canary(record, rollout), wanted)
            if not rolling:
                return record
            stable = replace(record.stable, count=replicas - wanted)
            return replace(record, stable=stable, traffic=LocalTraffic("pooled"))
        case SwitchActive():
            record = _ensure_canary(record, rollout)
            assert record.canary is not None
            record = _with_canary_count(record, max(record.canary.count, replicas))
            return replace(record, traffic=LocalTraffic("switched", 100))
        case ScaleDownOld():
            if record.traffic.mode != "switched":
                raise PlatformError("scale down the old side only after switching to the new one")
            return replace(record, stable=replace(record.stable, count=0))
        case Promote():
            return _promote(record, rollout)
        case Rollback():
            return _rollback(record, rollout)
    raise PlatformError(f"the local platform does not know {action!r}")


def _ensure_canary(record: AppRecord, rollout: RolloutState) -> AppRecord:
    spec = rollout.spec
    canary = record.canary
    if canary is not None and (canary.version, canary.command) == (spec.version, spec.image):
        return record
    return replace(record, canary=LocalRelease(spec.version, spec.image, 1, rollout.id))


def _with_canary_count(record: AppRecord, count: int) -> AppRecord:
    assert record.canary is not None
    return replace(record, canary=replace(record.canary, count=count))


def _promote(record: AppRecord, rollout: RolloutState) -> AppRecord:
    stable, spec = record.stable, rollout.spec
    if record.canary is None and (stable.version, stable.command) == (spec.version, spec.image):
        return record  # promoted already (Promote is re-asserted until it is ready)
    record = _with_canary_count(_ensure_canary(record, rollout), record.replicas)
    return replace(record, promoting=True)


def _rollback(record: AppRecord, rollout: RolloutState) -> AppRecord:
    """Stable at full size, all traffic to it, no canary; dead stable instances are replaced."""
    instances, stable = record.instances, record.stable
    if record.previous is not None and stable.origin == rollout.id:
        # The promotion had already swapped the roles: the new version goes back to being the
        # canary (serving until the old version is up again), the old one is stable again.
        roles = {"stable": "canary", "old": "stable"}  # old ones still up serve again
        instances = tuple(
            replace(item, side=roles[item.side]) if item.side in roles else item
            for item in instances
        )
        stable = record.previous
    instances = tuple(i for i in instances if not (i.side == "stable" and i.exited))
    return replace(
        record, stable=replace(stable, count=record.replicas), canary=None, previous=None,
        instances=instances, traffic=LocalTraffic(), promoting=False,
    )  # fmt: skip


def unapplied(
    record: AppRecord, rollout: RolloutState, wants: Sequence[PlatformAction]
) -> str | None:
    """What ``wants`` would still change in the desired part of ``record`` (None: nothing).

    Readiness asks this before it looks at processes: instances that match the record prove
    nothing when the record itself is not what the rollout requires (an abort saved without its
    rollback, a worker killed between starting the canary and setting its weight)."""
    expected = record
    for action in wants:
        expected = transition(expected, rollout, action)
    differences = []
    if record.stable != expected.stable:
        differences.append(f"stable {_release(record.stable)}, not {_release(expected.stable)}")
    if record.canary != expected.canary:
        differences.append(f"canary {_release(record.canary)}, not {_release(expected.canary)}")
    if record.traffic != expected.traffic:
        differences.append(f"traffic {_traffic(record.traffic)}, not {_traffic(expected.traffic)}")
    if record.promoting != expected.promoting:
        differences.append("the promotion is not under way")
    if record.baseline != expected.baseline:
        have, want = _release(record.baseline), _release(expected.baseline)
        differences.append(f"fresh baseline {have}, not {want}")
    return "the app record has " + "; ".join(differences) if differences else None


def _release(release: LocalRelease | None) -> str:
    return "none" if release is None else f"{release.version} x{release.count}"


def _traffic(traffic: LocalTraffic) -> str:
    if traffic.mode != "split":
        return traffic.mode
    rules = " + ".join(f"{rule.kind} {rule.name}" for rule in traffic.match)
    sticky = f" by {traffic.sticky.describe()}" if traffic.sticky else ""
    return f"weight {traffic.weight}%{sticky}" + (f" + {rules}" if rules else "")


# -- convergence -----------------------------------------------------------------------------
def members(record: AppRecord, side: str) -> tuple[Instance, ...]:
    """The instances that make up ``side`` (up to its count); healthy ones are kept first."""
    release = record.release(side)
    if release is None:
        return ()
    mine = [
        item
        for item in record.instances
        if item.side == side and not item.retiring and release.runs(item)
    ]
    mine.sort(key=lambda item: (item.exited, not item.routable))
    return tuple(mine[: release.count])


def surplus(record: AppRecord) -> tuple[Instance, ...]:
    wanted = {id(item) for side in SIDES for item in members(record, side)}
    return tuple(i for i in record.instances if not i.retiring and id(i) not in wanted)


def side_complete(record: AppRecord, side: str) -> bool:
    release, mine = record.release(side), members(record, side)
    count = release.count if release is not None else 0
    return len(mine) == count and all(item.live and item.routable for item in mine)


def complete(record: AppRecord) -> bool:
    return all(side_complete(record, side) for side in SIDES)


def missing(record: AppRecord) -> list[tuple[str, LocalRelease]]:
    """The instances to start: each side up to its count (dead members count: not replaced)."""
    starts: list[tuple[str, LocalRelease]] = []
    for side in SIDES:
        release = record.release(side)
        if release is not None:
            starts += [(side, release)] * (release.count - len(members(record, side)))
    return starts


def settle(record: AppRecord) -> AppRecord:
    """Swap roles once a promotion is up, and retire what is no longer wanted once all is up."""
    if record.promoting and record.canary is not None and side_complete(record, "canary"):
        new = replace(record.canary, count=record.replicas)
        roles = {"stable": "old", "canary": "stable"}
        instances = tuple(replace(i, side=roles.get(i.side, i.side)) for i in record.instances)
        record = replace(
            record, previous=record.stable, stable=new, canary=None, instances=instances,
            traffic=LocalTraffic(), promoting=False,
        )  # fmt: skip
    if not complete(record):
        return record
    extra = {id(item) for item in surplus(record)}
    kept = [replace(i, retiring=True) if id(i) in extra else i for i in record.instances]
    return replace(record, instances=tuple(i for i in kept if not (i.retiring and i.exited)))


def route(record: AppRecord) -> AppRoute:
    """What NGINX should do now: the desired split over the instances that may take traffic."""

    def pool(side: str) -> tuple[int, ...]:
        return tuple(
            item.port
            for item in record.instances
            if item.side == side and item.live and item.routable and not item.retiring
        )

    stable, canary, traffic = pool("stable"), pool("canary"), record.traffic
    fresh = pool("baseline") if record.baseline is not None else ()
    if traffic.mode == "pooled":
        return AppRoute(record.key, record.listen_port, stable + canary)
    if traffic.mode == "switched":
        if canary and (side_complete(record, "canary") or not stable):
            return AppRoute(record.key, record.listen_port, (), canary, 100)
        return AppRoute(record.key, record.listen_port, stable)
    share = baseline_share(traffic.weight, bool(fresh))
    match = (*traffic.match, PREVIEW_MATCH) if record.canary is not None else traffic.match
    return AppRoute(
        record.key, record.listen_port, stable, canary, traffic.weight, match, fresh, share,
        traffic.sticky,
    )  # fmt: skip


def assess(
    record: AppRecord,
    rollout: RolloutState,
    *,
    now: float,
    deadline: float,
    tail: Callable[[Instance], str],
) -> Readiness:
    """Whether what ``rollout`` asked is done: every wanted instance up, nothing left over."""
    owner = record.owner
    if not owns(record, rollout):
        if owner is not None and is_older(rollout, owner):
            if rollout.phase in (Phase.ABORTING, Phase.FAILED):
                return Ready()  # nothing of it is left to roll back: a newer rollout owns the app
            return Failed(f"rollout {owner.rollout_id} now owns {record.namespace}/{record.app}")
        return NotYet("nothing applied for this rollout yet")
    for side in SIDES:
        for item in members(record, side):
            where = f"{side} instance of {item.version} on port {item.port}"
            if item.exited:
                code = "code unknown" if item.exit_code is None else f"code {item.exit_code}"
                return Failed(f"{where} exited with {code}: {tail(item)}")
            if not item.routable and now - item.launched_at > deadline:
                return Failed(
                    f"{where} did not answer /healthz within {deadline:g} s: {tail(item)}"
                )
    waiting = []
    for side in SIDES:
        release, mine = record.release(side), members(record, side)
        if release is not None and not side_complete(record, side):
            up = sum(item.routable for item in mine)
            waiting.append(f"{up} of {release.count} {side} instance(s) of {release.version} up")
    leaving = [item for item in record.instances if item.retiring] + list(surplus(record))
    if leaving:
        waiting.append(f"{len(leaving)} instance(s) to stop")
    return NotYet("; ".join(waiting)) if waiting else Ready()
