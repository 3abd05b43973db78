"""Tests of the test stack itself: every other test trusts these services and fixtures.

Each test here fails if its part of the stack is broken: Redis that does not persist, a
Prometheus that does not give back exactly what was written, an Alertmanager that loses
alerts, or process handling that leaves servers behind or hides why one did not start.
"""

from __future__ import annotations

import math
import socket
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from canarist.demo import stack
from canarist.demo.stack import (
    BinaryMissingError,
    ServiceNotReadyError,
    ServiceProcess,
    list_alerts,
    pid_exists,
    start_redis,
)
from tests.promwrite import RemoteWriteError, write_samples


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def query(prometheus_url: str, path: str, **params: str | float) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus_url}{path}", params=params, trust_env=False, timeout=10)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def only_values(result: list[dict[str, Any]]) -> list[tuple[float, float]]:
    assert len(result) == 1, result
    return [(float(timestamp), float(value)) for timestamp, value in result[0]["values"]]


def aof_bytes(redis_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(redis_dir.glob("appendonlydir/*.aof")))


def test_redis_answers_and_writes_its_aof(redis_server: ServiceProcess) -> None:
    client = redis.Redis.from_url(redis_server.url)
    key = unique("canarist:test")
    assert client.set(key, "aof-value")
    assert client.get(key) == b"aof-value"
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    # Redis 7 keeps a multi-part AOF: appendonlydir/<base>.rdb, <incr>.aof and a manifest.
    deadline = time.monotonic() + 3
    while key.encode() not in aof_bytes(redis_server.workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert key.encode() in aof_bytes(redis_server.workdir)


def test_redis_restart_keeps_data_through_aof(redis_server: ServiceProcess) -> None:
    key = unique("canarist:restart")
    redis.Redis.from_url(redis_server.url).set(key, "survives")
    old_pid, port = redis_server.pid, redis_server.port

    redis_server.restart()

    assert not pid_exists(old_pid)
    assert (redis_server.port, redis_server.running) == (port, True)
    assert redis.Redis.from_url(redis_server.url).get(key) == b"survives"


def test_redis_killed_like_a_crash_keeps_acknowledged_writes(tmp_path: Path) -> None:
    service = start_redis(tmp_path)
    try:
        redis.Redis.from_url(service.url).rpush("events", "one", "two")
        service.kill()
        service.start()
        assert redis.Redis.from_url(service.url).lrange("events", 0, -1) == [b"one", b"two"]
    finally:
        service.stop()


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    service = start_redis(tmp_path)
    pid = service.pid
    assert pid_exists(pid)

    service.stop()
    service.stop()  # stopping twice is harmless

    assert not pid_exists(pid)
    assert not service.running
    with pytest.raises(OSError), socket.create_connection((stack.HOST, service.port), timeout=1):
        pass


def test_past_samples_come_back_exactly_from_query_range(prometheus_server: ServiceProcess) -> None:
    name = unique("canarist_test_past")
    now = int(time.time())
    # A recent sample first, so older ones take the out-of-order path: 2 h in the past is
    # "out of bounds" for a Prometheus without out_of_order_time_window.
    write_samples(prometheus_server.url, [({"__name__": name, "phase": "now"}, [(now, 1.0)])])
    start = now - 7200
    past = [(float(start + 60 * i), i * 1.1 + 1 / 3) for i in range(61)]  # 2 h ago to 1 h ago
    write_samples(prometheus_server.url, [({"phase": "past", "__name__": name}, past)])

    result = query(
        prometheus_server.url,
        "/api/v1/query_range",
        query=f'{name}{{phase="past"}}',
        start=start,
        end=start + 3600,
        step=60,
    )

    assert only_values(result) == past


def test_nan_and_float_precision_round_trip(prometheus_server: ServiceProcess) -> None:
    name = unique("canarist_test_precision")
    now = int(time.time())
    values = [math.nan, 0.1 + 0.2, 1 / 3, 5e-324, -0.0, 1.7976931348623157e308, -123456.789e-12]
    samples = [(float(now - 100 + i), value) for i, value in enumerate(values)]
    write_samples(prometheus_server.url, [({"__name__": name}, samples)])

    returned = only_values(query(prometheus_server.url, "/api/v1/query", query=f"{name}[5m]"))

    assert [timestamp for timestamp, _ in returned] == [timestamp for timestamp, _ in samples]
    assert math.isnan(returned[0][1])
    exact_bits = [struct.pack("<d", value) for _, value in returned[1:]]
    assert exact_bits == [struct.pack("<d", value) for value in values[1:]]


def test_write_samples_splits_large_inputs_into_batches(prometheus_server: ServiceProcess) -> None:
    name = unique("canarist_test_batches")
    now = int(time.time())
    long_series = [(float(now - 12_000 + i), float(i)) for i in range(12_000)]
    short_series = [(float(now - 5), 7.0)]
    series = [({"__name__": name, "s": "long"}, long_series), ({"__name__": name}, short_series)]

    assert write_samples(prometheus_server.url, series, max_samples_per_request=5_000) == 12_001

    counts = query(prometheus_server.url, "/api/v1/query", query=f"count_over_time({name}[4h])")
    assert sorted(float(item["value"][1]) for item in counts) == [1.0, 12_000.0]


def test_remote_write_error_carries_prometheus_text(prometheus_server: ServiceProcess) -> None:
    too_old = time.time() - 60 * 86400  # beyond the 30-day out-of-order window
    with pytest.raises(RemoteWriteError, match="too old sample"):
        write_samples(prometheus_server.url, [({"__name__": "canarist_too_old"}, [(too_old, 1)])])
    with pytest.raises(ValueError, match="__name__"):
        write_samples(prometheus_server.url, [({"job": "x"}, [(time.time(), 1.0)])])


def test_prometheus_restart_keeps_written_samples(prometheus_server: ServiceProcess) -> None:
    name = unique("canarist_test_restart")
    now = int(time.time())
    samples = [(float(now - 30), 1.5), (float(now - 20), 2.5)]
    write_samples(prometheus_server.url, [({"__name__": name}, samples)])
    old_pid = prometheus_server.pid

    prometheus_server.restart()

    assert not pid_exists(old_pid)
    result = query(prometheus_server.url, "/api/v1/query", query=f"{name}[5m]", time=now)
    assert only_values(result) == samples


def test_alert_posted_to_alertmanager_is_listed(alertmanager_server: ServiceProcess) -> None:
    rollout = unique("rollout")
    alert = {
        "labels": {"alertname": "CanaristRolloutAborted", "rollout": rollout},
        "annotations": {"summary": "canary error rate above policy"},
    }
    response = httpx.post(f"{alertmanager_server.url}/api/v2/alerts", json=[alert], trust_env=False)
    assert response.status_code == 200, response.text

    listed = list_alerts(alertmanager_server.url, [f'rollout="{rollout}"'])

    assert [item["labels"] for item in listed] == [alert["labels"]]
    assert listed[0]["annotations"] == alert["annotations"]
    assert listed[0]["status"]["state"] == "active"
    assert list_alerts(alertmanager_server.url, ['rollout="no-such-rollout"']) == []


def test_missing_binary_names_its_debian_package(tmp_path: Path) -> None:
    bogus = ServiceProcess(
        "bogus", ["canarist-no-such-binary"], tmp_path, 1, stack.redis_ping_probe, package="bogus"
    )
    with pytest.raises(BinaryMissingError, match=r"Debian package 'bogus'.*make test"):
        bogus.start()


def test_missing_alertmanager_names_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "_SEARCH_PATH", str(tmp_path))
    with pytest.raises(BinaryMissingError, match=r"'prometheus-alertmanager'.*make test"):
        stack.start_alertmanager(tmp_path)


def test_early_exit_error_shows_the_log(tmp_path: Path) -> None:
    argv = ["redis-server", "--port", "0", "--no-such-directive", "yes"]
    service = ServiceProcess("broken-redis", argv, tmp_path, 1, stack.redis_ping_probe)
    with pytest.raises(ServiceNotReadyError, match=r"(?s)exited with code 1.*Bad directive"):
        service.start()


def test_readiness_timeout_stops_the_process(tmp_path: Path) -> None:
    service = ServiceProcess(
        "never-ready", ["sleep", "60"], tmp_path, 1, lambda host, port: False, ready_timeout=0.5
    )
    with pytest.raises(ServiceNotReadyError, match=r"not ready within 0.5 s.*never-ready\.log"):
        service.start()
    assert not pid_exists(service.pid)


def test_prometheus_scrapes_the_targets_it_is_given(
    tmp_path: Path, alertmanager_server: ServiceProcess
) -> None:
    target = f"{stack.HOST}:{alertmanager_server.port}"
    prometheus = stack.start_prometheus(tmp_path, [target], job_name="scraped")
    try:
        deadline = time.monotonic() + 15
        up: list[dict[str, Any]] = []
        while not up and time.monotonic() < deadline:
            time.sleep(0.2)
            up = query(prometheus.url, "/api/v1/query", query='up{job="scraped"} == 1')
        assert [item["metric"]["instance"] for item in up] == [target]
    finally:
        prometheus.stop()
