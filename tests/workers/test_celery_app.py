"""The Celery app as configured by make_celery, and the settings it is built from."""

from __future__ import annotations

import json
import os
import time
from base64 import b64decode
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from canarist.demo.stack import ServiceProcess
from workers import celery_app
from workers.celery_app import (
    NOTIFY_QUEUE,
    ROLLOUTS_QUEUE,
    RedisTransport,
    Timings,
    build_runtime,
    enqueue_advance,
    make_celery,
    send_due,
)
from workers.settings import RedisSettings, WorkerSettings
from workers.tasks import ADVANCE, DELIVER, RECONCILE, ROUTINE, SUBMIT, URGENT

BROKER = "redis://127.0.0.1:6399/3"
ON_BROKER = WorkerSettings(redis=RedisSettings(url=BROKER))


def worker_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> WorkerSettings:
    """The workers' settings from exactly ``env``."""
    for name in [name for name in os.environ if name.startswith("CANARIST_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return WorkerSettings()


def test_the_app_acks_late_requeues_lost_work_and_prefetches_one() -> None:
    conf = make_celery(ON_BROKER).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True and conf.result_backend is None
    assert conf.broker_transport_options["visibility_timeout"] == 3600
    assert conf.broker_transport == "workers.celery_app:RedisTransport"


def test_tasks_are_registered_and_routed_to_their_queues() -> None:
    app = make_celery(ON_BROKER)
    assert {ADVANCE, DELIVER, RECONCILE, SUBMIT} <= set(app.tasks)
    other = make_celery(ON_BROKER)  # a second app in the process keeps its own tasks
    assert other.tasks[ADVANCE].__wrapped__ is not app.tasks[ADVANCE].__wrapped__
    routes = app.conf.task_routes
    assert routes[ADVANCE]["queue"] == routes[SUBMIT]["queue"] == ROLLOUTS_QUEUE
    assert routes[DELIVER]["queue"] == NOTIFY_QUEUE
    assert set(app.amqp.queues) == {ROLLOUTS_QUEUE, NOTIFY_QUEUE}


def test_beat_reconciles_and_delivers_on_schedule_and_its_messages_expire() -> None:
    timings = Timings(reconcile_every=7.0, deliver_every=3.0)
    schedule = make_celery(ON_BROKER, timings=timings).conf.beat_schedule
    assert schedule[RECONCILE]["schedule"] == timedelta(seconds=7)
    assert schedule[DELIVER]["schedule"] == timedelta(seconds=3)
    assert schedule[DELIVER]["options"]["expires"] == 3.0


def test_every_countdown_fits_in_the_visibility_timeout() -> None:
    assert Timings(visibility_timeout=600, lease_seconds=60).max_countdown == 300
    with pytest.raises(ValueError, match="at least twice lease_seconds"):
        Timings(visibility_timeout=100, lease_seconds=60)


def test_the_redis_transport_survives_a_restore_through_a_collected_connection() -> None:
    qos_class = RedisTransport.Channel.QoS

    class Gone:  # what Celery leaves behind after collecting a broken connection
        def conn_or_acquire(self, client: object) -> object:
            raise AttributeError("'NoneType' object has no attribute 'hostname'")

    qos = qos_class.__new__(qos_class)
    qos.channel = Gone()
    assert qos.restore_unacked() is None  # the messages stay unacked in Redis


def test_settings_come_from_the_documented_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "CANARIST_REDIS__URL": BROKER,
        "CANARIST_PROMETHEUS__URL": "http://prometheus:9090",
        "CANARIST_PROMETHEUS__TIMEOUT_SECONDS": "4.5",
        "CANARIST_POLICY_DIR": str(tmp_path),
        "CANARIST_ALERT_ROUTES": json.dumps(
            {"oncall": {"type": "alertmanager", "url": "http://am:9093", "severity": "page"}}
        ),
        "CANARIST_WORKER_METRICS_PORT": "9808",
    }
    settings = worker_settings(monkeypatch, env)
    assert (settings.redis.url, settings.prometheus.url) == (BROKER, "http://prometheus:9090")
    assert settings.prometheus.timeout_seconds == 4.5 and settings.policy_dir == tmp_path
    assert settings.alert_routes["oncall"].severity == "page"
    assert settings.worker_metrics_port == 9808
    assert worker_settings(monkeypatch, {}) == WorkerSettings.model_construct()


def test_alert_routes_may_live_in_a_file_or_in_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("oncall:\n  type: webhook\n  url: https://hooks.example/x\n")
    settings = worker_settings(monkeypatch, {"CANARIST_ALERT_ROUTES": str(routes)})
    assert settings.alert_routes["oncall"].type == "webhook"
    settings_file = tmp_path / "canarist.yaml"
    settings_file.write_text(
        "redis: {url: 'redis://r:6379/0'}\nalert_routes:\n"
        "  chat: {type: slack, url: 'https://hooks.slack.com/x', headers: {X-A: b}}\n"
    )
    settings = worker_settings(monkeypatch, {"CANARIST_SETTINGS_FILE": str(settings_file)})
    ((name, route),) = settings.alert_routes.items()
    assert (name, route.revealed_headers()) == ("chat", {"X-A": "b"})
    assert worker_settings(monkeypatch, {}).alert_routes == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"oncall": {"type": "alertmanager"}}', "needs at least a type and a url"),
        ('{"oncall": {"type": "x", "url": "y", "colour": "red"}}', "unknown keys"),
        ('["oncall"]', "must be a mapping"),
    ],
)
def test_bad_alert_routes_are_refused_with_a_message(
    text: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=message):
        worker_settings(monkeypatch, {"CANARIST_ALERT_ROUTES": text})


def test_the_default_app_is_built_on_first_access(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(celery_app, "_default", None)
    worker_settings(monkeypatch, {"CANARIST_REDIS__URL": BROKER})
    app = celery_app.app
    assert app.conf.broker_url == BROKER and celery_app.app is app
    with pytest.raises(AttributeError):
        _ = celery_app.nothing_here


def test_commands_and_rollbacks_go_ahead_of_a_rollouts_timetable(
    redis_server: ServiceProcess, tmp_path: Path
) -> None:
    """Over the real Redis: what Intake enqueues (a command, an event, a submission) and a
    rolling-back rollout's requeue land on the urgent list a worker pops first; the
    dispatcher's due steps and a routine countdown on the routine list behind it; a routine
    wait of more than a second on the store's schedule."""
    url = redis_server.url.rsplit("/", 1)[0] + "/7"
    settings = WorkerSettings(redis=RedisSettings(url=url), policy_dir=tmp_path)
    app = make_celery(settings, store_prefix="prio:")
    runtime = build_runtime(app, settings, store_prefix="prio:")  # no dispatcher thread
    broker = redis.Redis.from_url(url)
    try:
        broker.flushdb()
        enqueue_advance(app)("command", 1)
        send_due(app)("due", 1)
        runtime.requeue("poll", 1, 0.5)
        runtime.requeue("rollback", 1, 5.0, urgent=True)
        runtime.requeue("look", 1, 30.0)
        with app.producer_or_acquire() as producer:
            channel = producer.channel  # kombu's list for each priority
            urgent, routine = (channel._q_for_pri(ROLLOUTS_QUEUE, p) for p in (URGENT, ROUTINE))

        def rollouts(key: str) -> list[str]:
            return sorted(json.loads(b64decode(json.loads(m)["body"]))[0][0]
                          for m in broker.lrange(key, 0, -1))  # fmt: skip

        assert urgent != routine
        assert rollouts(urgent) == ["command", "rollback"]
        assert rollouts(routine) == ["due", "poll"]
        assert runtime.store.schedule.take(time.time() + 60, 10) == [("look", 1)]
        assert app.conf.broker_transport_options["priority_steps"] == [URGENT, ROUTINE]
    finally:
        broker.flushdb()
        broker.close()
        runtime.store.close()
        app.close()
