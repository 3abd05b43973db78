"""Fixtures for the local platform: one real NGINX and real demo-service processes per session.

``local_platform`` is a LocalPlatform on a temporary state directory, shut down (every process
stopped by PID) when the session ends. ``LocalApps`` registers apps on it and drives rollouts
of them: ``rollout()`` makes a RolloutState newer than every earlier one, ``until_ready()`` polls
readiness as the task does, and ``served()`` counts which version answered real requests through
the router. A test leaves its app with the stable version only; the ``clean`` teardown rolls back
whatever a failed test left behind, so one failure does not cascade.
"""

from __future__ import annotations

import itertools
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import httpx
import pytest

from workers.actions import PlatformAction, Rollback
from workers.platforms import NotYet, Readiness, Ready
from workers.platforms.local import LocalApp, LocalPlatform
from workers.platforms.local.process import free_port, live_groups, start_time
from workers.spec import RolloutSpec, RolloutTraffic
from workers.state import Phase, RolloutState

NAMESPACE = "shop"
_ids = itertools.count(1)


def service_command(version: str, *flags: str) -> str:
    """The demo service at 1 ms of work, as the local platform's ``{port}`` command line."""
    python = shlex.quote(sys.executable)
    service = f"{python} -m canarist.demo.service --port {{port}} --version {version}"
    return " ".join([service, "--latency", "0.001", *flags])


def gone(pids: set[int]) -> bool:
    """No process of any of these groups is running (zombies do not count)."""
    groups = live_groups() or set()
    return all(start_time(pid) is None and pid not in groups for pid in pids)


@dataclass
class LocalApps:
    platform: LocalPlatform
    ports: dict[str, int] = field(default_factory=dict)

    def register(self, app: str, replicas: int = 2, version: str = "v1") -> str:
        port = self.ports.setdefault(app, free_port())
        self.platform.register(
            NAMESPACE, app, listen_port=port, version=version,
            command=service_command(version), replicas=replicas,
        )  # fmt: skip
        return app

    def status(self, app: str) -> LocalApp:
        return self.platform.status(NAMESPACE, app)

    def rollout(
        self,
        app: str,
        version: str,
        strategy: str = "canary",
        command: str | None = None,
        traffic: RolloutTraffic | None = None,
    ) -> RolloutState:
        """A rollout created after every earlier one of this session (``traffic``: the policy's
        traffic section as the rollout keeps it, e.g. sticky)."""
        spec = RolloutSpec(
            version=version,
            image=command or service_command(version),
            platform="local",
            baseline_selector=f'app="{app}"',
            canary_selector=f'app="{app}",version="{version}"',
            strategy=strategy,
            traffic=traffic or RolloutTraffic(),
        )
        number = next(_ids)
        state = RolloutState.new(
            f"{app}-{number}", app=app, namespace=NAMESPACE, policy="test", spec=spec,
            now=1_700_000_000.0 + number,
        )  # fmt: skip
        return replace(state, phase=Phase.PROGRESSING)

    def apply(self, rollout: RolloutState, *actions: PlatformAction) -> Readiness:
        for action in actions:
            self.platform.apply(rollout, action)
        return self.until_ready(rollout, actions)[-1]

    def until_ready(
        self, rollout: RolloutState, wants: Sequence[PlatformAction], timeout: float = 30.0
    ) -> list[Readiness]:
        """Every readiness answer against ``wants`` until one is not NotYet (Ready or Failed)."""
        answers: list[Readiness] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers.append(self.platform.readiness(rollout, wants))
            if not isinstance(answers[-1], NotYet):
                return answers
            time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout:g} s: {answers[-1]}")

    def served(
        self, app: str, count: int = 100, headers: Mapping[str, str] | None = None
    ) -> Counter[str]:
        """Which version answered each of ``count`` requests through the router."""
        versions: Counter[str] = Counter()
        url = f"http://127.0.0.1:{self.ports[app]}/"
        with httpx.Client(trust_env=False, timeout=5) as client:
            for _ in range(count):
                response = client.get(url, headers=dict(headers or {}))
                assert response.status_code == 200, response.text
                versions[response.headers["x-canarist-version"]] += 1
        return versions

    def clean(self, app: str) -> None:
        """Roll back whatever a test left: the app ends with its stable version only."""
        if self.status(app).canary_version is not None:
            janitor = self.rollout(app, "janitor")
            assert self.apply(janitor, Rollback("test teardown", switch_back=True)) == Ready()


@pytest.fixture(scope="session")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    platform = LocalPlatform(tmp_path_factory.mktemp("local"))
    yield platform
    platform.shutdown()


@pytest.fixture(scope="session")
def local_apps(local_platform: LocalPlatform) -> LocalApps:
    return LocalApps(local_platform)
