"""``LocalPlatform``: the local platform's Platform, and the files it keeps in its directory.

What the platform promises, and the layout of its state directory, are in the package docstring
(``workers/platforms/local/__init__.py``); this module carries the decisions of model.py out.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from workers.actions import Match, PlatformAction
from workers.platforms.base import Failed, NotYet, PlatformError, Readiness, Ready
from workers.platforms.local import process as proc
from workers.platforms.local.model import (
    PREVIEW_HEADER,
    PREVIEW_VALUE,
    assess,
    claim,
    members,
    missing,
    owns,
    route,
    settle,
    transition,
    unapplied,
)
from workers.platforms.local.nginx import NginxRouter
from workers.platforms.local.record import (
    AppRecord,
    Instance,
    LocalRelease,
    check_command,
    check_name,
    redeclared,
    targets,
)
from workers.state import RolloutState

DEFAULT_DIR = "~/.local/state/canarist/local"


@dataclass(frozen=True)
class LocalInstance:
    track: str  # stable | canary | baseline (fresh) | old (being replaced by a promotion)
    version: str
    pid: int
    port: int
    healthy: bool  # alive and answering /healthz now
    exit_code: int | None = None  # once it has exited (None while it runs or if unknown)
    retiring: bool = False


@dataclass(frozen=True)
class LocalApp:
    """A snapshot of one app, for the demo's live view and for tests."""

    namespace: str
    app: str
    url: str  # the router: http://127.0.0.1:<listen_port>/
    stable_version: str
    canary_version: str | None
    instances: tuple[LocalInstance, ...]
    weight: int  # percent of requests the canary gets (pooled: its share of instances)
    match: tuple[Match, ...]  # requests sent to the canary whatever the weight
    mode: str  # split | pooled (rolling) | switched (blue-green)
    rollout_id: str | None

    def pids(self, track: str | None = None) -> set[int]:
        return {i.pid for i in self.instances if track is None or i.track == track}


class LocalPlatform:
    """Runs each app's versions as processes and routes to them through one NGINX."""

    name = "local"
    lock_timeout = 10.0  # seconds to wait for another worker's lock: then TemporaryError
    health_deadline = 60.0  # an instance not healthy by then has failed
    settle_seconds = 5.0  # apply waits this long for new instances to answer /healthz
    stop_grace = 5.0  # SIGTERM, then SIGKILL after this many seconds

    def __init__(self, state_dir: Path, *, nginx: str = "nginx") -> None:
        self.state_dir = Path(state_dir).expanduser().absolute()
        self._router = NginxRouter(self.state_dir / "nginx", nginx)

    @classmethod
    def from_env(cls) -> LocalPlatform:
        """The platform of ``CANARIST_LOCAL_DIR`` (one per directory and process)."""
        return _shared(os.environ.get("CANARIST_LOCAL_DIR") or DEFAULT_DIR)

    # -- the public API --------------------------------------------------------------------------
    def register(
        self,
        namespace: str,
        app: str,
        *,
        listen_port: int,
        version: str,
        command: str,
        replicas: int = 2,
        region_header: str = "x-region",
    ) -> None:
        """Declare an app and run its stable version behind NGINX on 127.0.0.1:listen_port.

        Idempotent: the same arguments again restart nothing (dead stable instances are
        replaced). Waits until every stable instance answers /healthz, or raises PlatformError
        with the log of the one that did not."""
        for label, value in (("namespace", namespace), ("app", app), ("version", version)):
            check_name(label, value)
        check_command(command)
        if replicas < 1 or not 0 < listen_port < 65536:
            raise PlatformError("replicas must be at least 1 and listen_port a TCP port")
        self._router.binary()  # no NGINX: say how to install it before starting anything
        with self._app_lock(namespace, app):
            record = self._find(namespace, app)
            self._check_port(namespace, app, listen_port, record)
            if record is None:
                stable = LocalRelease(version, command, replicas)
                record = AppRecord(namespace, app, listen_port, replicas, region_header, stable)
            else:
                record = redeclared(record, listen_port, version, command, replicas)
                record = replace(record, region_header=region_header)
            record = self._converge(record, wait=self.health_deadline)
            for item in members(record, "stable"):
                if item.exited or not item.routable:
                    state = "exited" if item.exited else "is not healthy"
                    raise PlatformError(
                        f"{namespace}/{app} {version} on port {item.port} {state}: "
                        f"{proc.log_tail(Path(item.log))}"
                    )

    def apply(self, rollout: RolloutState, action: PlatformAction) -> None:
        with self._app_lock(rollout.namespace, rollout.app):
            before = self._load(rollout.namespace, rollout.app)
            record = claim(before, rollout, type(action).__name__)
            record = transition(record, rollout, action)
            if record.canary is not None and record.canary != before.canary:
                check_command(record.canary.command)
            if (record.traffic.match, record.traffic.sticky) != (
                before.traffic.match,
                before.traffic.sticky,
            ):
                self._check_router(record)
            self._converge(record, wait=self.settle_seconds)

    def readiness(self, rollout: RolloutState, wants: Sequence[PlatformAction]) -> Readiness:
        """First the app record against what the rollout requires (``wants``), then converge
        further and compare the record with what runs, then the router: a router restarted
        after the analysis window began means the window saw an outage."""
        try:
            with self._app_lock(rollout.namespace, rollout.app):
                record = self._load(rollout.namespace, rollout.app)
                if owns(record, rollout):
                    behind = unapplied(record, rollout, wants)
                    if behind is not None:
                        return NotYet(behind)
                    record = self._converge(record)
        except PlatformError as exc:
            return Failed(str(exc))
        answer = assess(record, rollout, now=time.time(), deadline=self.health_deadline, tail=_tail)
        started, window = self._router.started_at(), rollout.window_start
        watching = isinstance(answer, Ready) and rollout.awaiting is None
        if watching and started is not None and window is not None and started > window:
            when = time.strftime("%H:%M:%S", time.localtime(started))
            return NotYet(f"the router was down and was restarted at {when}, within the window")
        return answer

    def heal(self) -> list[str]:
        """Restart the router if its master died, whatever any rollout is doing: it fronts
        every version of every app. Returns what was repaired (nothing, mostly)."""
        if not any((self.state_dir / "apps").glob("*.json")):
            return []
        with proc.file_lock(self.state_dir / "locks" / "router.lock", self.lock_timeout):
            if self._router.master() is not None:
                return []
            self._router.publish([route(record) for record in self._records()])
        return [f"the router of {self.state_dir} was not running: restarted it"]

    def status(self, namespace: str, app: str) -> LocalApp:
        record = self._load(namespace, app)
        groups, instances = proc.live_groups(), []
        for item in record.instances:
            up = not item.exited and proc.alive(item.pid, item.start, groups)
            healthy = up and proc.healthy(item.port, timeout=0.2)
            instances.append(
                LocalInstance(
                    item.side, item.version, item.pid, item.port, healthy,
                    item.exit_code, item.retiring,
                )
            )  # fmt: skip
        traffic, canary = record.traffic, record.canary
        weight = traffic.weight if traffic.mode == "split" else 100
        if traffic.mode == "pooled" and canary is not None:
            weight = round(100 * canary.count / max(1, canary.count + record.stable.count))
        return LocalApp(
            namespace, app, f"http://{proc.HOST}:{record.listen_port}/",
            record.stable.version, canary.version if canary else None, tuple(instances),
            weight if canary else 0, traffic.match, traffic.mode,
            record.owner.rollout_id if record.owner else None,
        )  # fmt: skip

    def preview_target(self, namespace: str, app: str) -> tuple[str, dict[str, str]]:
        """The router's URL and the header that sends a request to the new version alone."""
        record = self._load(namespace, app)
        return f"http://{proc.HOST}:{record.listen_port}", {PREVIEW_HEADER: PREVIEW_VALUE}

    def targets_file(self) -> Path:
        """Prometheus file_sd JSON: every serving instance with app, namespace, version, track."""
        path = self.state_dir / "targets.json"
        if not path.exists():
            proc.write_atomic(path, "[]\n")
        return path

    def shutdown(self) -> None:
        """Stop every instance this directory knows (by PID) and NGINX; forget the apps."""
        for path in sorted((self.state_dir / "apps").glob("*.json")):
            namespace, _, app = path.stem.partition(".")
            with self._app_lock(namespace, app):
                record = self._find(namespace, app)
                if record is not None:
                    self._stop([*record.instances])
                path.unlink(missing_ok=True)
        orphans = []  # started, but a crash came before the app's record was saved
        for meta in (self.state_dir / "logs").glob("*/*.pid"):
            known = proc.read_json(meta)
            orphans.append((int(known["pid"]), int(known["start"])))
            meta.unlink(missing_ok=True)
        proc.stop(orphans, self.stop_grace)
        with proc.file_lock(self.state_dir / "locks" / "router.lock", self.lock_timeout):
            self._router.stop(self.stop_grace)
            proc.write_atomic(self.targets_file(), "[]\n")

    # -- convergence -----------------------------------------------------------------------------
    def _converge(self, record: AppRecord, wait: float = 0.0) -> AppRecord:
        """Start what is missing, route to what is healthy, stop what is retired; saved."""
        record = settle(self._refresh(record))
        record = self._start_missing(record)
        self._save(record)  # PIDs are on disk before anything else can fail
        deadline = time.monotonic() + wait
        while any(not (i.routable or i.exited) for i in record.instances):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
            record = self._refresh(record)
        record = settle(record)
        self._save(record)
        with proc.file_lock(self.state_dir / "locks" / "router.lock", self.lock_timeout):
            records = self._records()
            self._router.publish([route(item) for item in records])
            self._write_targets(records)
        retiring = [item for item in record.instances if item.retiring]
        if retiring:  # NGINX no longer sends them anything: stop them
            self._stop(retiring)
            record = replace(record, instances=tuple(i for i in record.instances if not i.retiring))
            self._save(record)
        return record

    def _refresh(self, record: AppRecord) -> AppRecord:
        """Who died (and with which code), and who answers /healthz now."""
        groups, seen = proc.live_groups(), []
        for item in record.instances:
            if not item.exited and not proc.alive(item.pid, item.start, groups):
                code = proc.exit_code(Path(item.log).with_suffix(".exit"))
                seen.append(replace(item, exited=True, routable=False, exit_code=code))
            elif not item.exited and not item.routable and proc.healthy(item.port):
                seen.append(replace(item, routable=True))
            else:
                seen.append(item)
        return replace(record, instances=tuple(seen))

    def _start_missing(self, record: AppRecord) -> AppRecord:
        instances = list(record.instances)
        taken = {item.port for item in instances}
        for side, release in missing(record):
            port = proc.free_port()
            while port in taken:
                port = proc.free_port()
            taken.add(port)
            argv = [part.replace("{port}", str(port)) for part in shlex.split(release.command)]
            log = self._logs(record) / f"{_safe(release.version)}-{port}.log"
            pid, start = proc.launch(argv, log, log.with_suffix(".exit"), _environment())
            proc.write_atomic(log.with_suffix(".pid"), json.dumps({"pid": pid, "start": start}))
            instances.append(
                Instance(side, release.version, release.command, port, pid, start, str(log),
                         time.time())
            )  # fmt: skip
        return replace(record, instances=tuple(instances))

    def _stop(self, instances: list[Instance]) -> None:
        proc.stop([(item.pid, item.start) for item in instances], self.stop_grace)
        for item in instances:
            Path(item.log).with_suffix(".pid").unlink(missing_ok=True)

    def _check_router(self, candidate: AppRecord) -> None:
        """nginx -t on the configuration ``candidate`` would produce; nothing is saved."""
        with proc.file_lock(self.state_dir / "locks" / "router.lock", self.lock_timeout):
            others = [r for r in self._records() if (r.namespace, r.app) != _id(candidate)]
            self._router.check([route(record) for record in [*others, candidate]])

    def _write_targets(self, records: list[AppRecord]) -> None:
        text = json.dumps(targets(records, proc.HOST), indent=2) + "\n"
        path = self.targets_file()
        if path.read_text(encoding="utf-8") != text:
            proc.write_atomic(path, text)

    # -- files -----------------------------------------------------------------------------------
    def _path(self, namespace: str, app: str) -> Path:
        return self.state_dir / "apps" / f"{namespace}.{app}.json"

    def _logs(self, record: AppRecord) -> Path:
        return self.state_dir / "logs" / f"{record.namespace}.{record.app}"

    @contextmanager
    def _app_lock(self, namespace: str, app: str) -> Iterator[None]:
        path = self.state_dir / "locks" / f"{namespace}.{app}.lock"
        with proc.file_lock(path, self.lock_timeout):
            yield

    def _find(self, namespace: str, app: str) -> AppRecord | None:
        path = self._path(namespace, app)
        data = proc.read_json(path)
        try:
            return None if data is None else AppRecord.from_record(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise PlatformError(f"{path} is not a local platform app record: {exc}") from exc

    def _load(self, namespace: str, app: str) -> AppRecord:
        record = self._find(namespace, app)
        if record is None:
            raise PlatformError(
                f"{namespace}/{app} is not registered on the local platform in {self.state_dir}: "
                f"register it first with LocalPlatform.register({namespace!r}, {app!r}, "
                "listen_port=..., version=..., command=...) (canarist demo does this)"
            )
        return record

    def _records(self) -> list[AppRecord]:
        found = []
        for path in sorted((self.state_dir / "apps").glob("*.json")):
            namespace, _, app = path.stem.partition(".")
            found.append(self._load(namespace, app))
        return found

    def _save(self, record: AppRecord) -> None:
        text = json.dumps(record.to_record(), indent=2) + "\n"
        proc.write_atomic(self._path(record.namespace, record.app), text)

    def _check_port(
        self, namespace: str, app: str, listen_port: int, record: AppRecord | None
    ) -> None:
        for other in self._records():
            if other.listen_port == listen_port and _id(other) != (namespace, app):
                raise PlatformError(f"port {listen_port} is {other.namespace}/{other.app}'s")
        if (record is None or record.listen_port != listen_port) and proc.port_in_use(listen_port):
            raise PlatformError(f"port {listen_port} is in use: NGINX could not listen on it")


@functools.cache
def _shared(directory: str) -> LocalPlatform:
    return LocalPlatform(Path(directory))


def _environment() -> dict[str, str]:
    """The worker's environment, with its Python first on PATH (as in an activated venv)."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}


def _tail(item: Instance) -> str:
    return proc.log_tail(Path(item.log))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _id(record: AppRecord) -> tuple[str, str]:
    return record.namespace, record.app
