"""Shared fixtures: the real services of the test stack (see canarist/demo/stack.py).

Each service is started once per test session, only when a test first asks for it, on a free
loopback port in its own temporary directory, and stopped by its PID when the session ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from canarist.demo.stack import ServiceProcess, start_alertmanager, start_prometheus, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """redis-server with AOF; connect with `redis.Redis.from_url(redis_server.url)`."""
    service = start_redis(tmp_path_factory.mktemp("redis"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """Prometheus with remote write (tests/promwrite.py) and a 30-day out-of-order window."""
    service = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def alertmanager_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """Alertmanager with a null receiver; read alerts back with `stack.list_alerts(url)`."""
    service = start_alertmanager(tmp_path_factory.mktemp("alertmanager"))
    yield service
    service.stop()
