"""`canarist demo`: a real progressive delivery, end to end, on one machine.

Nothing is faked. ``Demo`` starts Redis (AOF), Alertmanager and Prometheus (scraping every
instance the local platform runs, found through its file_sd targets), then Canarist itself as
the processes an operator runs (``canarist api``, ``canarist worker``, ``canarist beat``), the
NGINX router and the stable version of the demo service through the local platform, and a
Poisson load with a share of Korean users. It then submits each release of scenario.py through
the public HTTP API, exactly as a CI pipeline would, and follows it until Canarist decides; the
live view (view.py) shows each step, weight, per-metric evidence and decision as they happen.
At the end it saves each rollout's HTML report (fetched from the API, the page an alert links
to), prints the alert Alertmanager received and a summary, and stops every process it started,
by PID. The exit code says whether Canarist decided as the scenario expects.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from analyzer.sources.prometheus import PrometheusSource
from canarist.demo import scenario
from canarist.demo.load import LoadGenerator
from canarist.demo.stack import (
    HOST,
    ReadinessProbe,
    ServiceProcess,
    free_port,
    http_probe,
    list_alerts,
    start_alertmanager,
    start_prometheus,
    start_redis,
)
from canarist.settings import hash_token
from workers.notify.notice import report_url
from workers.platforms.local import LocalPlatform

CANARIST = Path(sys.executable).with_name("canarist")
NEEDED = {
    "redis-server": "redis-server",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "nginx": "nginx",
}
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DemoError(RuntimeError):
    """The demo cannot run here; the message says what to do."""


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path | None = None  # default: a new temporary directory, removed unless kept
    policy_dir: Path = Path("policies")
    time_scale: float = 20.0  # every policy duration divided by this
    rate: float = 50.0  # requests per second through the router
    region_share: float = 0.2  # share of requests from Korea (x-region: KR)
    replicas: int = 2  # stable instances
    release_timeout: float = 240.0  # seconds a release may take before the demo gives up
    keep: bool = False  # leave everything running at the end


@dataclass
class Result:
    """What Canarist decided about one release, and where to read why."""

    release: scenario.DemoRelease
    rollout_id: str
    phase: str
    reason: str
    report: Path | None = None
    report_url: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def as_expected(self) -> bool:
        return self.phase == self.release.expected


Watcher = Callable[[list[dict[str, Any]], dict[tuple[str, int], int]], None]


class Demo:
    """The whole stack, started in ``__enter__`` and stopped, by PID, in ``__exit__``."""

    def __init__(self, options: DemoOptions) -> None:
        check_binaries()  # before anything is created: a refusal leaves nothing behind
        self.options = options
        self._temporary = options.workdir is None
        self.workdir = Path(options.workdir or tempfile.mkdtemp(prefix="canarist-demo-"))
        self.token = secrets.token_urlsafe(24)
        self.report_secret = secrets.token_hex(16)  # signs the report links alerts carry
        self.services: list[ServiceProcess] = []
        self.platform = LocalPlatform(self.workdir / "local")
        self.router_port = free_port()
        self.load: LoadGenerator | None = None
        self.api_url = self.alertmanager_url = self.prometheus_url = ""

    @property
    def dashboard_url(self) -> str:
        """The dashboard (canarist/ui/) the demo's API serves; sign in with ``token``."""
        return f"{self.api_url}/ui/rollouts"

    # -- the stack -------------------------------------------------------------------------------
    def __enter__(self) -> Demo:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None or not self.options.keep:  # --keep keeps only a finished demo
            self.stop()

    def _start(self) -> None:
        options, work = self.options, self.workdir
        policies = work / "policies"
        for name in {release.policy for release in scenario.RELEASES}:
            source = options.policy_dir / f"{name}.yaml"
            scenario.scaled_policy(source, policies, options.time_scale)
        command = scenario.service_command(scenario.STABLE, scenario.STABLE_FLAGS)
        self.platform.register(
            scenario.NAMESPACE,
            scenario.APP,
            listen_port=self.router_port,
            version=scenario.STABLE,
            command=command,
            replicas=options.replicas,
        )
        redis = self._add(start_redis(work / "redis"))
        alertmanager = self._add(start_alertmanager(work / "alertmanager"))
        prometheus = self._add(
            start_prometheus(work / "prometheus", file_sd=self.platform.targets_file())
        )
        self.alertmanager_url, self.prometheus_url = alertmanager.url, prometheus.url
        api_port, metrics_port = free_port(), free_port()
        self.api_url = f"http://{HOST}:{api_port}"
        settings = self._settings_file(redis.url, policies, metrics_port)
        env = {"CANARIST_SETTINGS_FILE": str(settings), "CANARIST_LOCAL_DIR": str(work / "local")}
        api = ["api", "--host", HOST, "--port", str(api_port), "--log-level", "warning"]
        self._canarist("api", api, api_port, http_probe("/healthz"), env)
        worker = ["worker", "--pool", "solo", "--without-gossip", "--without-mingle"]
        worker += ["--log-level", "warning"]  # its metrics port answers once it consumes tasks
        self._canarist("worker", worker, metrics_port, http_probe("/metrics"), env)
        beat = ["beat", "--log-level", "warning", "--schedule", str(work / "beat-schedule")]
        self._canarist("beat", beat, 0, _started, env)  # beat serves nothing: running is ready
        self._wait_for_baseline()
        self.load = LoadGenerator(
            f"http://{HOST}:{self.router_port}/",
            options.rate,
            region_share=options.region_share,
        )
        self.load.start()

    def _add(self, service: ServiceProcess) -> ServiceProcess:
        self.services.append(service)
        return service

    def _settings_file(self, redis_url: str, policies: Path, metrics_port: int) -> Path:
        document: dict[str, Any] = {
            "redis": {"url": redis_url},
            "prometheus": {"url": self.prometheus_url},
            "policy_dir": str(policies),
            # submits the releases; with --keep, a person may pause or abort them too
            "api_tokens": [
                {"name": "demo", "sha256": hash_token(self.token), "roles": ["submit", "operate"]}
            ],
            "alert_routes": {"oncall": {"type": "alertmanager", "url": self.alertmanager_url}},
            "public_url": self.api_url,
            "report_secret": self.report_secret,
            "worker_metrics_port": metrics_port,
        }
        path = self.workdir / "canarist.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    def _canarist(
        self, name: str, argv: list[str], port: int, probe: ReadinessProbe, env: dict[str, str]
    ) -> None:
        """Start ``canarist <argv>`` as an operator would, with the demo's settings."""
        argv = [str(CANARIST), *argv]
        service = ServiceProcess(name, argv, self.workdir / name, port, probe, env=env)
        self._add(service.start())

    def _wait_for_baseline(self, timeout: float = 30.0) -> None:
        """Until Prometheus scrapes every stable instance: no baseline, no comparison."""
        query = f'up{{app="{scenario.APP}",version="{scenario.STABLE}"}} == 1'
        deadline, step = time.monotonic() + timeout, timedelta(seconds=1)
        with PrometheusSource(self.prometheus_url, timeout=5) as prometheus:
            while time.monotonic() < deadline:
                now = datetime.now(UTC)
                scraped = prometheus.query_range(query, now - step, now, step)
                if len(scraped) >= self.options.replicas:
                    return
                time.sleep(0.5)
        raise DemoError(f"Prometheus did not scrape the stable version within {timeout:g} s")

    def stop(self) -> None:
        """Stop the load, every instance and NGINX, then Canarist and the services, by PID."""
        if self.load is not None:
            self.load.stop()
        try:
            self.platform.shutdown()
        except Exception as exc:  # a teardown carries on: the services below still stop
            print(f"canarist demo: stopping the local instances failed: {exc}", file=sys.stderr)
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        if self._temporary and not self.options.keep:
            self._remove_all_but_reports()

    def _remove_all_but_reports(self) -> None:
        """The temporary work directory goes, except the reports the summary pointed to."""
        if not self.workdir.is_dir():
            return
        for entry in self.workdir.iterdir():
            if entry.name == "reports":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.workdir.rmdir()  # only when no report was written

    # -- the releases ----------------------------------------------------------------------------
    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.api_url, headers=headers, trust_env=False, timeout=10)

    def release(self, release: scenario.DemoRelease, stable: str, watch: Watcher) -> Result:
        """Submit ``release`` through the API, follow it to a decision, fetch its report."""
        job = {
            "app": scenario.APP,
            "namespace": scenario.NAMESPACE,
            "version": release.version,
            "image": release.command(),
            "policy": release.policy,
            "platform": "local",
            "baseline": f'app="{scenario.APP}",version="{stable}"',
            "canary": f'app="{scenario.APP}",version="{release.version}"',
            "idempotency_key": f"demo-{release.version}-{self.token[:8]}",
        }
        started = time.monotonic()
        with self.client() as client:
            answer = client.post("/v1/rollouts", json=job)
            if answer.status_code >= 400:
                raise DemoError(f"the API refused {release.version}: {answer.text}")
            rollout_id = answer.json()["id"]
            detail = self._follow(client, rollout_id, watch, started)
            result = Result(
                release,
                rollout_id,
                detail["phase"],
                detail.get("abort_reason") or _last_reason(detail),
                seconds=time.monotonic() - started,
            )
            result.report, result.report_url = self._save_report(client, rollout_id, release)
        if result.phase in ("aborted", "failed"):
            result.alerts = self._alerts_for(rollout_id)
        return result

    def _follow(
        self, client: httpx.Client, rollout_id: str, watch: Watcher, started: float
    ) -> dict[str, Any]:
        while True:
            detail: dict[str, Any] = client.get(f"/v1/rollouts/{rollout_id}").json()
            watch([detail], self.load.counts() if self.load else {})
            if detail["terminal"]:
                return detail
            if time.monotonic() - started > self.options.release_timeout:
                raise DemoError(
                    f"{rollout_id} undecided after {self.options.release_timeout:g} s "
                    f"(phase {detail['phase']}, stage {detail['stage_label']})"
                )
            time.sleep(0.5)

    def _save_report(
        self, client: httpx.Client, rollout_id: str, release: scenario.DemoRelease
    ) -> tuple[Path | None, str | None]:
        answer = client.get(f"/v1/rollouts/{rollout_id}/report")
        if answer.status_code != 200:
            return None, None
        path = self.workdir / "reports" / f"{release.version}-{rollout_id}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(answer.text, encoding="utf-8")
        return path, report_url(self.api_url, rollout_id, secret=self.report_secret)

    def _alerts_for(self, rollout_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds for the rollout (the outbox delivers within seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            alerts = list_alerts(self.alertmanager_url, [f'rollout_id="{rollout_id}"'])
            if alerts or time.monotonic() > deadline:
                return alerts
            time.sleep(0.5)


def _started(_host: str, _port: int) -> bool:
    return True


def _last_reason(detail: dict[str, Any]) -> str:
    verdict = detail.get("last_verdict") or {}
    return str(verdict.get("reason") or detail["phase"])


def check_binaries() -> None:
    """Every server the demo runs is installed, or a DemoError says how to install it."""
    missing = sorted(
        package for binary, package in NEEDED.items() if not shutil.which(binary, path=_path())
    )
    if missing:
        raise DemoError(
            f"missing Debian packages: {', '.join(missing)}. `make demo` installs them; or run "
            f"`sudo scripts/install-system-packages.sh {' '.join(missing)}`."
        )


def _path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), _SEARCH_PATH])


def run_releases(demo: Demo, watch: Watcher) -> list[Result]:
    """Every release of the scenario in turn; the stable version follows each promotion."""
    results, stable = [], scenario.STABLE
    for release in scenario.RELEASES:
        result = demo.release(release, stable, watch)
        results.append(result)
        if result.phase == "promoted":
            stable = release.version
    return results
