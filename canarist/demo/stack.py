"""Real service processes for the demo and the test stack: redis-server, prometheus, alertmanager.

`canarist demo` and Canarist's tests run against the real services Canarist talks to in
production, on free loopback ports, rather than against mocks (docs/architecture.md, "Tests"), so
both start them the same way, from here. This module owns the process
plumbing: find the binary (or say which Debian package provides it), start it in its own
directory with its output in a log file, wait until it really serves, and stop it by its own
PID. `restart()` keeps the port and the data directory, so crash-safety tests can bounce
Redis (AOF) or Prometheus (WAL) in the middle of a test.

Only the standard library and httpx are used; tests/conftest.py turns these into session
fixtures and canarist/demo/run.py into the demo's stack.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from workers.platforms.local.process import free_port

__all__ = [
    "HOST",
    "BinaryMissingError",
    "ReadinessProbe",
    "ServiceError",
    "ServiceNotReadyError",
    "ServiceProcess",
    "free_port",
    "http_probe",
    "list_alerts",
    "pid_exists",
    "redis_ping_probe",
    "start_alertmanager",
    "start_prometheus",
    "start_redis",
]

HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40
# Debian puts some daemons in sbin, which a non-root PATH may lack.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
DEBIAN_PACKAGE_OF = {
    "redis-server": "redis-server",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "nginx": "nginx",
}

ReadinessProbe = Callable[[str, int], bool]

# Safety net: a script or test run that dies on an exception still stops what it started.
_RUNNING: set[ServiceProcess] = set()


class ServiceError(RuntimeError):
    """A test-stack service could not be started or stopped."""


class BinaryMissingError(ServiceError):
    """The service's binary is not installed."""


class ServiceNotReadyError(ServiceError):
    """The service exited early or did not become ready before its deadline."""


def http_probe(path: str) -> ReadinessProbe:
    """Ready when GET `path` answers 200 (stdlib client: no proxy settings can intervene)."""

    def probe(host: str, port: int) -> bool:
        connection = http.client.HTTPConnection(host, port, timeout=2)
        try:
            connection.request("GET", path)
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    return probe


def redis_ping_probe(host: str, port: int) -> bool:
    """Ready on +PONG; while Redis replays its AOF it answers -LOADING, which is not ready."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class ServiceProcess:
    """One server binary started with fixed argv in `workdir`, logging to `workdir/<name>.log`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        port: int,
        probe: ReadinessProbe,
        *,
        scheme: str = "http",
        package: str | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv: tuple[str, ...] = tuple(argv)
        self.workdir = Path(workdir)
        self.port = port
        self.probe = probe
        self.scheme = scheme
        self.package = package or DEBIAN_PACKAGE_OF.get(Path(argv[0]).name, argv[0])
        self.ready_timeout = ready_timeout
        self.env = dict(env or {})  # added to this process' environment
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        suffix = "/0" if self.scheme == "redis" else ""
        return f"{self.scheme}://{HOST}:{self.port}{suffix}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        """The PID of the process last started (still answered after it stopped)."""
        if self._popen is None:
            raise ServiceError(f"{self.name} was never started")
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> ServiceProcess:
        if self.running:
            return self
        binary = shutil.which(self.argv[0], path=_SEARCH_PATH)
        if binary is None:
            raise BinaryMissingError(
                f"{self.argv[0]!r} is not installed; it comes from the Debian package "
                f"{self.package!r}. Run `make test`, which installs it, or "
                f"`sudo scripts/install-system-packages.sh {self.package}`."
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"=== canarist: {' '.join(self.argv)}\n".encode())
        self._log_file.flush()
        try:
            self._popen = subprocess.Popen(
                [binary, *self.argv[1:]],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        except OSError as exc:
            self._end(signal.SIGTERM, timeout=0)
            raise ServiceError(f"cannot run {binary}: {exc}") from exc
        _RUNNING.add(self)
        try:
            self._wait_ready()
        except ServiceNotReadyError:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            assert self._popen is not None
            exit_code = self._popen.poll()
            if exit_code is not None:
                raise ServiceNotReadyError(
                    self._failure(f"exited with code {exit_code} while starting")
                )
            if self.probe(HOST, self.port):
                return
            time.sleep(0.05)
        raise ServiceNotReadyError(self._failure(f"was not ready within {self.ready_timeout:g} s"))

    def _failure(self, what: str) -> str:
        return f"{self.name} (pid {self.pid}, port {self.port}) {what}; {self.log_tail()}"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            return f"no log at {self.log_path}: {exc}"
        return f"last {len(tail)} lines of {self.log_path}:\n" + "\n".join(tail)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM our own PID (a clean shutdown flushes AOF/WAL), then SIGKILL after `timeout`."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: only what the service already handed to the OS survives."""
        self._end(signal.SIGKILL, timeout=10.0)

    def _end(self, first_signal: signal.Signals, timeout: float) -> None:
        popen = self._popen
        if popen is not None and popen.poll() is None:
            popen.send_signal(first_signal)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        _RUNNING.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> ServiceProcess:
        """Stop (if running) and start again on the same port with the same data directory."""
        self.stop()
        return self.start()


@atexit.register
def _stop_all_running() -> None:
    for service in list(_RUNNING):
        service.stop()


def _start_on_free_port(build: Callable[[int], ServiceProcess]) -> ServiceProcess:
    """Start, retrying on a fresh port if another process took ours between probe and bind."""
    for _ in range(2):
        service = build(free_port())
        try:
            return service.start()
        except ServiceNotReadyError:
            if "address already in use" not in service.log_tail().lower():
                raise
    return build(free_port()).start()


def start_redis(workdir: Path) -> ServiceProcess:
    """redis-server with AOF (fsync every second) and no RDB snapshots, as every deployment runs."""

    def build(port: int) -> ServiceProcess:
        argv = ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(workdir)]
        argv += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        argv += ["--protected-mode", "no", "--daemonize", "no"]
        return ServiceProcess("redis", argv, workdir, port, redis_ping_probe, scheme="redis")

    return _start_on_free_port(build)


def start_prometheus(
    workdir: Path,
    scrape_targets: Sequence[str] = (),
    *,
    job_name: str = "local",
    scrape_interval: str = "1s",
    file_sd: Path | None = None,
) -> ServiceProcess:
    """Prometheus accepting remote write, with a 30-day out-of-order window for past samples.

    `scrape_targets` are "host:port" strings scraped as job `job_name`; `file_sd` is a file_sd
    JSON file (targets with labels, re-read every second) scraped as job `file_sd`. The first
    scrape comes about 5 s after start: Prometheus 2.42 applies discovered targets at most every
    5 s.
    """
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "storage": {"tsdb": {"out_of_order_time_window": "30d"}},
        "scrape_configs": [],
    }
    if scrape_targets:
        static_configs = [{"targets": list(scrape_targets)}]
        config["scrape_configs"] = [{"job_name": job_name, "static_configs": static_configs}]
    if file_sd is not None:
        discovery = [{"files": [str(file_sd)], "refresh_interval": "1s"}]
        config["scrape_configs"].append({"job_name": "file_sd", "file_sd_configs": discovery})
    config_path = workdir / "prometheus.yml"
    workdir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML

    def build(port: int) -> ServiceProcess:
        argv = [
            "prometheus",
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--storage.tsdb.retention.time=90d",
            f"--web.listen-address={HOST}:{port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-admin-api",
            "--web.enable-lifecycle",
        ]
        return ServiceProcess("prometheus", argv, workdir, port, http_probe("/-/ready"))

    return _start_on_free_port(build)


def start_alertmanager(workdir: Path, webhook_url: str | None = None) -> ServiceProcess:
    """Alertmanager without clustering; alerts go to a null receiver unless a webhook is given."""
    receiver: dict[str, Any] = {"name": "default"}
    if webhook_url is not None:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    route = {
        "receiver": "default",
        "group_wait": "0s",
        "group_interval": "1s",
        "repeat_interval": "1h",
    }
    config = {"route": route, "receivers": [receiver]}
    config_path = workdir / "alertmanager.yml"
    workdir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2))

    def build(port: int) -> ServiceProcess:
        argv = [
            "prometheus-alertmanager",
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--cluster.listen-address=",  # empty disables gossip, which would bind 0.0.0.0:9094
        ]
        return ServiceProcess("alertmanager", argv, workdir, port, http_probe("/-/ready"))

    return _start_on_free_port(build)


def list_alerts(alertmanager_url: str, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Alerts Alertmanager holds, via GET /api/v2/alerts; `filters` are matchers like 'a="b"'."""
    with httpx.Client(base_url=alertmanager_url, trust_env=False, timeout=10) as client:
        response = client.get("/api/v2/alerts", params={"filter": list(filters)})
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


def pid_exists(pid: int) -> bool:
    """Whether a live process (neither gone nor a zombie) has this PID."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True
