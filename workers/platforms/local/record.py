"""The record the local platform keeps per app (apps/<namespace>.<app>.json), and its checks.

Frozen dataclasses, written with ``to_record()`` and read back with ``from_record()``: the desired
state (the stable and canary releases, how traffic is split, the rollout that owns the app) and
what runs (each instance's side, version, port, process group and health). ``targets`` turns
records into Prometheus file_sd groups. The checks refuse what a person or a job wrote that the
platform cannot run: names unsafe in file names, a command line without ``{port}``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from analyzer.policy.traffic import StickyKey
from workers.actions import Match
from workers.platforms.base import PlatformError

SIDES = ("stable", "canary", "baseline")  # baseline: a fresh baseline (analysis.baseline fresh)
RECORD_FORMAT = 1  # what a record without a fresh baseline says: every release reads it
BASELINE_FORMAT = 2  # a record with a fresh baseline: a release that knows no baseline refuses it
# a record whose split is sticky (keyed on a user), with or without a fresh baseline: a release
# before would drop the key and split each user's requests apart, so it refuses the record
STICKY_FORMAT = 3
READ_FORMATS = frozenset({RECORD_FORMAT, BASELINE_FORMAT, STICKY_FORMAT})


@dataclass(frozen=True)
class LocalRelease:
    """One side: ``count`` instances of ``version`` run by ``command`` (not the ``Release`` action,
    which frees an app's lane)."""

    version: str
    command: str
    count: int
    origin: str | None = None  # the rollout that brought it (None: registered)

    def runs(self, instance: Instance) -> bool:
        return (instance.version, instance.command) == (self.version, self.command)


@dataclass(frozen=True)
class Instance:
    side: str  # stable | canary | baseline | old (the stable side a promotion replaced)
    version: str
    command: str
    port: int
    pid: int  # the process group leader
    start: int  # the leader's start time: a reused PID is not ours
    log: str
    launched_at: float
    routable: bool = False  # answered /healthz once: traffic may reach it
    exited: bool = False
    exit_code: int | None = None
    retiring: bool = False  # out of the router; stopped once NGINX has reloaded

    @property
    def live(self) -> bool:
        return not self.exited


@dataclass(frozen=True)
class LocalTraffic:
    """How the app's NGINX splits requests now (the policy's ``traffic:`` is its TrafficSpec)."""

    mode: str = "split"  # split (weight + match) | pooled (rolling) | switched (blue-green)
    weight: int = 0
    match: tuple[Match, ...] = ()
    sticky: StickyKey | None = None  # split keyed on a user (traffic.sticky), not a request


@dataclass(frozen=True)
class Owner:
    rollout_id: str
    attempt: int
    created_at: float
    strategy: str


@dataclass(frozen=True)
class AppRecord:
    namespace: str
    app: str
    listen_port: int
    replicas: int
    region_header: str
    stable: LocalRelease
    canary: LocalRelease | None = None
    traffic: LocalTraffic = field(default_factory=LocalTraffic)
    instances: tuple[Instance, ...] = ()
    owner: Owner | None = None
    promoting: bool = False
    previous: LocalRelease | None = None  # the stable before a promotion, while it completes
    # the fresh baseline: the stable's version and command, as many as the canary, started with it
    baseline: LocalRelease | None = None

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", f"{self.namespace}_{self.app}_{self.listen_port}")

    def release(self, side: str) -> LocalRelease | None:
        sides = {"stable": self.stable, "canary": self.canary, "baseline": self.baseline}
        return sides.get(side)

    def to_record(self) -> dict[str, Any]:
        """Format 1 without a fresh baseline (its key left out, so a worker of the release
        before baselines still reads it during an upgrade), format 2 with one; format 3 with a
        sticky split (``traffic.sticky``, left out when not sticky), whatever else."""
        record = asdict(self)
        fresh = self.baseline is not None or any(i.side == "baseline" for i in self.instances)
        if self.baseline is None:
            del record["baseline"]
        found = BASELINE_FORMAT if fresh else RECORD_FORMAT
        sticky = self.traffic.sticky
        if sticky is None:
            del record["traffic"]["sticky"]
        else:
            record["traffic"]["sticky"] = sticky.to_record()
            found = STICKY_FORMAT
        return {"format": found, **record}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AppRecord:
        data = dict(record)
        found = data.pop("format", None)
        if found not in READ_FORMATS:
            raise ValueError(f"app record format {found!r} is not one of {sorted(READ_FORMATS)}")
        traffic = data.get("traffic") or {}
        rules = tuple(Match(**rule) for rule in traffic.get("match", ()))
        sticky = traffic.get("sticky")
        key = StickyKey.from_record(sticky) if sticky else None
        return cls(
            **{
                **data,
                "stable": LocalRelease(**data["stable"]),
                "canary": LocalRelease(**data["canary"]) if data.get("canary") else None,
                "previous": LocalRelease(**data["previous"]) if data.get("previous") else None,
                "baseline": LocalRelease(**data["baseline"]) if data.get("baseline") else None,
                "traffic": LocalTraffic(
                    traffic.get("mode", "split"), traffic.get("weight", 0), rules, key
                ),
                "instances": tuple(Instance(**item) for item in data.get("instances", ())),
                "owner": Owner(**data["owner"]) if data.get("owner") else None,
            }
        )


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(label: str, value: str) -> None:
    if not _NAME.fullmatch(value):
        raise PlatformError(f"{label} {value!r}: use letters, digits, '.', '_' and '-'")


def check_command(command: str) -> None:
    """A command line the platform can run: it parses, and it has a ``{port}`` placeholder."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise PlatformError(f"command {command!r} does not parse: {exc}") from exc
    if not argv or "{port}" not in command:
        raise PlatformError(
            f"the local platform runs a command line with a {{port}} placeholder (the job's "
            f"image), e.g. 'python -m canarist.demo.service --port {{port}}'; got {command!r}"
        )


def redeclared(
    record: AppRecord, listen_port: int, version: str, command: str, replicas: int
) -> AppRecord:
    """``record`` with its stable version declared again; dead stable instances are dropped."""
    count = replicas
    if record.traffic.mode == "pooled" and record.canary is not None:
        count = max(0, replicas - record.canary.count)
    stable = record.stable
    if (stable.version, stable.command) != (version, command):
        stable = LocalRelease(version, command, count)
    alive = tuple(i for i in record.instances if not (i.side == "stable" and i.exited))
    return replace(
        record, listen_port=listen_port, replicas=replicas, instances=alive,
        stable=replace(stable, count=count),
    )  # fmt: skip


def targets(records: Sequence[AppRecord], host: str) -> list[dict[str, Any]]:
    """Prometheus file_sd groups: one per serving instance, labelled app/namespace/version/track
    and ``pod`` (its own name, so queries written ``by (pod)`` see each instance). ``track`` is
    the side: a fresh baseline's instances run the stable version with ``track="baseline"``."""
    return [
        {
            "targets": [f"{host}:{item.port}"],
            "labels": {
                "app": record.app,
                "namespace": record.namespace,
                "version": item.version,
                "track": item.side,
                "pod": f"{record.app}-{item.port}",  # one name per instance, as a pod's
            },
        }
        for record in records
        for item in record.instances
        if item.side in SIDES and item.routable and item.live and not item.retiring
    ]
