"""The load runner's decisions against a store (in memory) and a real socket: what it starts,
why it stops, and what it writes to the audit trail. The local platform end to end is in
tests/workers/platforms/local/test_local_load.py."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from tests.waiting import wait_until
from tests.workers.rollout_driver import Driver, small
from workers.actions import EventKind
from workers.intake import Intake
from workers.load.runner import LoadRunner
from workers.platforms.local.process import free_port
from workers.state import Phase
from workers.store import MemoryStateStore


def preview(load: str, tmp_path: Path) -> tuple[LoadRunner, MemoryStateStore, str]:
    """A blue-green rollout at its preview analysis, now, and a runner whose target refuses."""
    policy = small(
        f"{{type: blue_green, analyze: {{duration: 1m, load: {load}}}}}", "{interval: 10s}"
    )
    driver = Driver(policy, now=time.time())
    driver.tick()
    driver.ready()
    store = MemoryStateStore()
    store.create(replace(driver.state, spec=replace(driver.state.spec, platform="kubernetes")))
    intake = Intake(store, tmp_path, time.time, lambda *_: None, alert_routes=())
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: every request is an error
    runner = LoadRunner(
        store, lambda _: policy, intake.record, time.time, policy_dir=tmp_path,
        target=lambda state, order: (nowhere, {}),
    )  # fmt: skip
    return runner, store, driver.state.id


def loads(store: MemoryStateStore, rollout_id: str) -> list[tuple[str, dict[str, object]]]:
    return [
        (event.message, dict(event.data))
        for event in store.events(rollout_id)
        if event.kind == EventKind.SYNTHETIC_LOAD
    ]


def test_a_load_runs_to_its_count_once_and_reports_the_errors_it_saw(tmp_path: Path) -> None:
    runner, store, rollout_id = preview("{rate: 50/s, max_requests: 5}", tmp_path)
    runner.poll()
    assert len(runner.running) == 1
    wait_until(
        "the load to finish", lambda: all(r.sender.finished for r in runner.running.values())
    )
    runner.poll()
    ((message, data),) = loads(store, rollout_id)
    assert (data["sent"], data["errors"], data["statuses"]) == (5, 5, {"0": 5}), data
    assert data["stopped"] == "its request count was reached"
    assert message.startswith("synthetic load sent: 5 requests at 50/s to http://127.0.0.1:")
    runner.poll()
    assert runner.running == {} and len(loads(store, rollout_id)) == 1  # never sent twice


def test_a_paused_rollout_stops_its_load(tmp_path: Path) -> None:
    runner, store, rollout_id = preview("{rate: 20/s}", tmp_path)
    runner.poll()
    (running,) = runner.running.values()
    loaded = store.load(rollout_id)
    store.save(replace(loaded.state, phase=Phase.PAUSED), loaded.revision)
    runner.poll()
    assert running.sender.join(5)
    runner.poll()
    ((_, data),) = loads(store, rollout_id)
    assert data["stopped"] == "the rollout is paused" and int(str(data["sent"])) < 200


def test_a_sample_gone_since_submit_is_reported_not_sent(tmp_path: Path) -> None:
    runner, store, rollout_id = preview("{rate: 20/s, requests: gone.txt}", tmp_path)
    runner.poll()
    assert runner.running == {}
    ((message, data),) = loads(store, rollout_id)
    assert message.startswith("synthetic load not sent: ") and "gone.txt" in message
    assert data["sent"] == 0
    runner.poll()
    assert len(loads(store, rollout_id)) == 1
