"""A live dashboard for the browser tests: the real API (uvicorn on a loopback port) over the
session's real Redis (db 6) and Prometheus, and a rollout that moves when a test drives it.

The rollout is walked the way the Celery task walks it (tests/canarist/report/rollout_scenario:
load, observe, ``stepping.step_and_save`` with a real analysis over Prometheus), under a fake
clock, so a test moves it a stage or a look exactly when it wants to see the page change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
import uvicorn
from fastapi import FastAPI

from canarist.api import create_app
from canarist.demo.stack import HOST, ServiceProcess, free_port
from canarist.settings import ApiToken, PrometheusSettings, Settings, hash_token
from tests.canarist.report.rollout_scenario import QUICK_POLICY, Clock, Rollout, past_start
from tests.workloads import Behaviour
from workers.intake import Intake
from workers.store import RedisStateStore

SECRET = "dashboard-report-secret-0123456789abcdef"
# name: (token, namespaces, roles)
TOKENS = {
    "alice": ("cnr_alice-dashboard", ["shop"], ["operate"]),
    "bob": ("cnr_bob-dashboard", ["payments"], ["operate"]),
}


class Server:
    """uvicorn serving an app in a thread on a fixed port; stop() and start() again restart the
    API as a new process would: each start() builds a new app with ``make_app`` (its own store
    client, its own dashboard), so nothing carries over but what Redis keeps."""

    def __init__(self, make_app: Callable[[], FastAPI]) -> None:
        self.make_app, self.port = make_app, free_port()
        self.app: FastAPI | None = None
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.app = self.make_app()
        config = uvicorn.Config(self.app, host=HOST, port=self.port, log_level="warning")
        self.server = server = uvicorn.Server(config)
        self.thread = threading.Thread(target=server.run, name="dashboard-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)


@dataclass
class Live:
    server: Server
    intake: Intake
    clock: Clock
    rollout: Rollout

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def rollout_id(self) -> str:
        return self.rollout.rollout_id


def settings_for(prometheus_url: str, policy_dir: object) -> Settings:
    tokens = [
        ApiToken(name=name, sha256=hash_token(token), namespaces=scopes, roles=roles)
        for name, (token, scopes, roles) in TOKENS.items()
    ]
    return Settings(
        api_tokens=tokens,
        policy_dir=policy_dir,
        prometheus=PrometheusSettings(url=prometheus_url),
        report_secret=SECRET,
    )


@pytest.fixture(scope="module")
def live(
    redis_server: ServiceProcess,
    prometheus_server: ServiceProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    policy_dir = tmp_path_factory.mktemp("dashboard-policies")
    (policy_dir / "quick-canary.yaml").write_text(QUICK_POLICY)
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/6"
    store = RedisStateStore.from_url(redis_url)
    clock = Clock(0.0)
    intake = Intake(
        store, policy_dir, clock, lambda rollout_id, revision: None, alert_routes={"oncall"}
    )
    settings, clients = settings_for(prometheus_server.url, policy_dir), [store]

    def make_app() -> FastAPI:
        """The API as a new process builds it: its own Redis client, intake and app."""
        for old in clients[1:]:
            old.close()
        del clients[1:]
        clients.append(RedisStateStore.from_url(redis_url))
        api_intake = Intake(
            clients[-1], policy_dir, clock, lambda *a: None, alert_routes={"oncall"}
        )
        return create_app(settings, api_intake)

    server = Server(make_app)
    try:
        rollout = Rollout(
            intake, prometheus_server.url, clock, policy="quick-canary", canary=Behaviour(),
            start=past_start(2),
        )  # fmt: skip
        rollout.drive(until=lambda state: state.last_look_at is not None)  # at 20 %, one look
        server.start()
        yield Live(server, intake, clock, rollout)
    finally:
        server.stop()
        for client_store in clients:
            client_store.close()
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()
