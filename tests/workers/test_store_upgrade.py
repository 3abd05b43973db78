"""Records in flight at an upgrade of Canarist: what an earlier release left in Redis is carried
on, and a record this release cannot read is named, reported and left as it is.

Each folder of tests/fixtures/stored/ holds the keys one release left in Redis (made by
tests/workers/stored_records.py, never again): they are written back byte for byte under a
fresh prefix of the real Redis, and this release must read the rollout, step it with the engine,
save it, and deliver its waiting alert. The records of a newer release are made here by raising
a record's format, as that release would have written it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from analyzer.policy import Policy, load_policy
from analyzer.verdict import Outcome
from canarist.demo.stack import ServiceProcess
from canarist.report.build import build_report
from tests.workers.conftest import FakeClock, FakeSource, Queued, job, task_runtime
from tests.workers.rollout_driver import verdict
from tests.workers.stored_records import (
    POLICY_FILE,
    SCENARIOS,
    STORED,
    restore,
    rewrite_state,
)
from tests.workers.test_store import wipe
from workers.actions import (
    AnalysisResult,
    EventKind,
    ManualCommand,
    Observation,
    PlatformReady,
    Tick,
    action_from_record,
)
from workers.delivery import Delivery
from workers.engine import step
from workers.errors import UnsupportedFormat
from workers.intake import Intake, split
from workers.metrics import LOGGER_NAME
from workers.notify.memory import MemoryNotifier
from workers.platforms.memory import MemoryPlatform
from workers.state import Phase, RolloutState
from workers.store import FORMATS, AuditEvent, RecordKind, RedisStateStore
from workers.tasks import Runtime, advance, reconcile

RELEASES = sorted(folder.name for folder in STORED.iterdir() if folder.is_dir())
NEWER = 1 + max(max(found.reads) for found in FORMATS.values())


@dataclass
class Left:
    """One fixture written back into Redis: its store, raw client, prefix and policy."""

    store: RedisStateStore
    raw: redis.Redis
    prefix: str
    rollout_id: str
    policy: Policy
    keys: dict[str, Any]

    def trail(self) -> list[AuditEvent]:
        events: list[AuditEvent] = []
        while page := self.store.events(self.rollout_id, events[-1].id if events else None):
            events.extend(page)
        return events


@pytest.fixture
def left(redis_server: ServiceProcess) -> Iterator[Any]:
    """``left(release, scenario)``: that fixture's keys, written back under a fresh prefix."""
    prefix = f"test:{uuid.uuid4().hex}:"
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    stores: list[RedisStateStore] = []

    def load(release: str, scenario: str) -> Left:
        fixture = json.loads((STORED / release / f"{scenario}.json").read_text())
        restore(raw, prefix, fixture["keys"])
        store = RedisStateStore.from_url(redis_server.url, prefix=prefix)
        stores.append(store)
        policy = load_policy(STORED / release / fixture["policy"])
        return Left(store, raw, prefix, fixture["rollout"], policy, fixture["keys"])

    yield load
    for store in stores:
        store.close()
    raw.close()
    wipe(redis_server.url, prefix)


def delivery_to(found: Left, oncall: MemoryNotifier) -> Delivery:
    """Outbox delivery now, to the route ``oncall``; no hand-over or record is expected."""
    unexpected = pytest.fail
    return Delivery(found.store, {"oncall": oncall}, time.time, unexpected, record=unexpected)


def next_observation(state: RolloutState, policy: Policy, now: float) -> Observation:
    """What a worker would tell the engine next: a person's command where one is needed."""
    if state.phase is Phase.PAUSED:
        return ManualCommand("resume", "upgrade-test")
    if state.phase.terminal:
        return ManualCommand("retry", "upgrade-test")
    if state.awaiting is not None:
        return PlatformReady(state.awaiting)
    request = state.analysis_due(now)
    if request is not None:
        return AnalysisResult(request, verdict(policy, Outcome.INCONCLUSIVE))
    return Tick()


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("release", RELEASES)
def test_a_rollout_left_by_a_release_is_read_stepped_saved_and_its_alert_delivered(
    left: Any, release: str, scenario: str
) -> None:
    found: Left = left(release, scenario)
    state, revision = found.store.load(found.rollout_id)
    assert [stored.state for stored in found.store.list_rollouts()] == [state]
    trail = found.trail()
    assert trail[0].kind == "submitted"
    assert EventKind.UNREADABLE_EVENT not in {event.kind for event in trail}
    assert found.store.latest_for(state.app, state.namespace) == state.id

    now = max(state.updated_at, state.next_due_at or state.updated_at)
    new, actions = step(state, found.policy, next_observation(state, found.policy, now), now)
    events, outbox = split(actions)
    assert found.store.save(new, revision, events=events, outbox=outbox) == revision + 1
    assert found.store.load(found.rollout_id) == (new, revision + 1)
    if scenario == "in-analysis":
        assert new.last_look_at is not None and new.last_look_at > (state.last_look_at or 0)
    elif scenario == "paused":
        assert (state.phase, new.phase) == (Phase.PAUSED, Phase.PROGRESSING)
    else:
        assert (state.phase, new.attempt) == (Phase.ABORTED, state.attempt + 1)
    saved = json.loads(found.raw.hget(f"{found.prefix}rollout:{found.rollout_id}", "state"))
    # a rollout from before pinning stays unpinned, in its own format: it reads its file by name
    pinned = int(release.removeprefix("v")) >= 3
    assert (state.policy_digest is not None) is pinned
    assert saved["format"] == (FORMATS[RecordKind.ROLLOUT].writes if pinned else 1)
    if pinned and state.policy_digest is not None:
        assert found.store.policies.get(state.policy_digest) == (
            STORED / release / POLICY_FILE
        ).read_text(encoding="utf-8")
    after = found.trail()
    assert len(after) == len(trail) + len(events)
    assert EventKind.UNREADABLE_EVENT not in {event.kind for event in after}

    oncall = MemoryNotifier()
    settled = delivery_to(found, oncall).run(limit=50)
    assert {item.outcome for item in settled} <= {"delivered"}
    waiting = [name for name in found.keys if name.startswith("outbox:item:")]
    assert len(settled) >= len(waiting)
    if scenario == "aborted":
        payloads = [found.keys[name]["hash"]["payload"] for name in waiting]
        stamped = int(release.removeprefix("v")) >= 2  # before outbox format 2: the old way
        assert all(("occurred_at" in payload) is stamped for payload in payloads)
        assert waiting and [notice.kind for notice in oncall.notices] == ["aborted"]
        aborted_at = next(e.at for e in trail if e.kind == "phase" and e.data["to"] == "aborting")
        assert oncall.notices[0].occurred_at == aborted_at


def test_events_and_outbox_items_from_before_formats_are_read_as_format_0(left: Any) -> None:
    found: Left = left("v0", "aborted")
    entries = found.keys[f"events:{found.rollout_id}"]["stream"]
    items = [entry["hash"] for name, entry in found.keys.items() if name.startswith("outbox:item:")]
    assert all(set(fields) == {"event"} for _, fields in entries)  # no format: read as 0
    assert items and all("format" not in fields for fields in items)
    assert [event.id for event in found.trail()] == [entry_id for entry_id, _ in entries]
    (item,) = found.store.outbox.claim("test", time.time(), 60.0)
    assert item.format == 0 and item.action == action_from_record(items[0]["payload"])


def test_what_this_release_writes_says_its_format(left: Any) -> None:
    found: Left = left("v0", "paused")
    state, revision = found.store.load(found.rollout_id)
    new, actions = step(state, found.policy, ManualCommand("abort", "bob"), state.updated_at)
    events, outbox = split(actions)
    found.store.save(new, revision, events=events, outbox=outbox)
    stream = found.raw.xrange(f"{found.prefix}events:{found.rollout_id}")
    written = [fields for _, fields in stream][-len(events) :]
    event_format = str(FORMATS[RecordKind.EVENT].writes)
    assert events and all(fields["format"] == event_format for fields in written)
    kinds = [json.loads(fields["event"])["kind"] for fields in written]
    assert kinds == [event.kind.value for event in events] and "phase" in kinds
    item_keys = list(found.raw.scan_iter(match=f"{found.prefix}outbox:item:*"))
    item_format = str(FORMATS[RecordKind.OUTBOX_ITEM].writes)
    assert item_keys and all(found.raw.hget(key, "format") == item_format for key in item_keys)


@pytest.mark.parametrize(("stored", "found_format"), [(NEWER, NEWER), (None, 0)])
def test_a_rollout_of_a_format_not_read_here_is_named_and_left_as_it_is(
    left: Any, stored: int | None, found_format: int
) -> None:
    found: Left = left("v0", "in-analysis")
    text = rewrite_state(found.raw, found.prefix, found.rollout_id, format=stored)
    with pytest.raises(UnsupportedFormat) as refused:
        found.store.load(found.rollout_id)
    error = refused.value
    assert (error.kind, error.record_id, error.found, error.reads) == (
        "rollout",
        found.rollout_id,
        found_format,
        (1, 2, 3, 4, 5, 6),
    )
    newer = "a newer release wrote it" if stored else "an older release wrote it"
    assert f"rollout {found.rollout_id} is stored in format {found_format}" in str(error)
    assert "(it reads formats 1, 2, 3, 4, 5, 6)" in str(error) and newer in str(error)
    assert found.store.list_rollouts() == []
    assert found.raw.hget(f"{found.prefix}rollout:{found.rollout_id}", "state") == text


def worker_over(found: Left, tmp_path: Path) -> tuple[Runtime, Queued]:
    """The task's runtime over the fixture's store and policy, and what it queues."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default-canary.yaml").write_bytes((STORED / "v0" / POLICY_FILE).read_bytes())
    clock, queued = FakeClock(time.time()), Queued()
    intake = Intake(found.store, policies, clock, queued.enqueue, alert_routes={"oncall"})
    runtime = task_runtime(
        found.store, intake, FakeSource(), MemoryPlatform(), clock, queued, MemoryNotifier()
    )
    return runtime, queued


def test_the_worker_reports_an_unreadable_rollout_and_carries_on_with_the_others(
    left: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    found: Left = left("v0", "in-analysis")
    revision = found.store.load(found.rollout_id).revision
    text = rewrite_state(found.raw, found.prefix, found.rollout_id, format=NEWER)
    other = left("v0", "paused")  # another rollout under the same prefix, readable
    runtime, queued = worker_over(found, tmp_path)
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        assert advance(runtime, found.rollout_id, revision) == "unreadable"
        assert set(reconcile(runtime)) == {found.rollout_id, other.rollout_id}
    assert [rollout_id for rollout_id, *_ in queued.advance] == [other.rollout_id]
    lines = [record.getMessage() for record in caplog.records]
    assert sum(f"is stored in format {NEWER}" in line for line in lines) == 2, lines
    assert found.raw.hget(f"{found.prefix}rollout:{found.rollout_id}", "state") == text
    assert found.raw.exists(f"{found.prefix}lease:{found.rollout_id}") == 0
    assert found.raw.zscore(f"{found.prefix}due", found.rollout_id) is not None


def test_a_new_revision_waits_while_the_rollout_it_supersedes_cannot_be_read(
    left: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    found: Left = left("v0", "in-analysis")
    text = rewrite_state(found.raw, found.prefix, found.rollout_id, format=NEWER)
    runtime, _ = worker_over(found, tmp_path)
    with pytest.raises(UnsupportedFormat, match=f"rollout {found.rollout_id} is stored"):
        runtime.intake.submit(job(policy="default-canary"), "ci")  # the API's 500
    successor = runtime.store.latest_for("checkout", "shop")
    assert successor is not None and successor != found.rollout_id
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        assert advance(runtime, successor, 1) == "blocked"
    assert f"cannot supersede {found.rollout_id}: rollout {found.rollout_id} is stored" in (
        caplog.text
    )
    assert runtime.store.load(successor).state.phase is Phase.PENDING
    assert found.raw.hget(f"{found.prefix}rollout:{found.rollout_id}", "state") == text


def test_an_event_of_a_newer_format_reads_as_unreadable_and_the_report_still_builds(
    left: Any,
) -> None:
    found: Left = left("v0", "aborted")
    key = f"{found.prefix}events:{found.rollout_id}"
    future = {"event": '{"shape": "of a newer release"}', "format": str(NEWER)}
    event_id = found.raw.xadd(key, future)
    found.raw.xadd(key, {"event": "{not json"})
    *readable, newer, broken = found.trail()
    assert EventKind.UNREADABLE_EVENT not in {event.kind for event in readable}
    assert (newer.id, newer.kind, newer.data) == (
        event_id,
        EventKind.UNREADABLE_EVENT,
        {"format": NEWER},
    )
    assert newer.message.startswith(
        f"audit event {event_id} of rollout {found.rollout_id} is stored in format {NEWER}"
    )
    assert abs(newer.at - int(event_id.split("-")[0]) / 1000) < 1e-6
    assert broken.kind == EventKind.UNREADABLE_EVENT and "does not parse" in broken.message
    report = build_report(found.store, None, found.policy, found.rollout_id, now=time.time())
    assert report.history.decision.headline == "Aborted"
    assert any("2 event(s) of the audit trail" in problem for problem in report.problems)


def test_an_event_kind_this_release_does_not_know_is_kept_as_the_string_stored(
    left: Any,
) -> None:
    found: Left = left("v1", "aborted")
    key = f"{found.prefix}events:{found.rollout_id}"
    (last,) = found.raw.xrevrange(key, count=1)
    written = {**json.loads(last[1]["event"]), "kind": "canary_rewound", "message": "a newer kind"}
    event_id = found.raw.xadd(key, {"event": json.dumps(written), "format": "1"})
    *known, newer = found.trail()
    assert all(isinstance(event.kind, EventKind) for event in known)
    assert (newer.id, newer.kind, newer.message) == (event_id, "canary_rewound", "a newer kind")
    assert not isinstance(newer.kind, EventKind)
    report = build_report(found.store, None, found.policy, found.rollout_id, now=time.time())
    assert report.history.decision.headline == "Aborted"
    assert not any("audit trail" in problem for problem in report.problems)
    assert newer in report.history.events


def test_an_outbox_item_of_a_newer_format_waits_for_a_worker_that_reads_it(left: Any) -> None:
    found: Left = left("v0", "aborted")
    (key,) = found.raw.scan_iter(match=f"{found.prefix}outbox:item:*")
    found.raw.hset(key, mapping={"format": str(NEWER), "payload": "<a newer release's payload>"})
    oncall = MemoryNotifier()
    (settled,) = delivery_to(found, oncall).run()
    assert settled.outcome == "retry" and oncall.attempts == 0
    assert f"is stored in format {NEWER}" in (settled.error or "")
    assert found.raw.hget(key, "payload") == "<a newer release's payload>"
    assert found.raw.hexists(key, "given_up") == 0


def _layout(keys: dict[str, Any]) -> dict[str, Any]:
    """Each key's type, or its entries with the top-level keys of each field's JSON."""
    layout: dict[str, Any] = {}
    for name, entry in keys.items():
        if "hash" in entry:
            entries = [entry["hash"]]
        elif "stream" in entry:
            entries = [fields for _, fields in entry["stream"]]
        else:
            layout[name] = "string" if "string" in entry else "zset"
            continue
        layout[name] = [
            {
                field: sorted(value) if isinstance(value, dict) else "text"
                for field, value in e.items()
            }
            for e in entries
        ]
    return layout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_release_before_formats_reads_what_this_one_writes(scenario: str) -> None:
    """The same keys, fields and JSON keys as it wrote itself: the formats of events and outbox
    items are fields beside their JSON, which it never reads (a rolling upgrade, or one undone,
    runs both releases on one Redis)."""
    before, after = (
        _layout(json.loads((STORED / release / f"{scenario}.json").read_text())["keys"])
        for release in ("v0", "v1")
    )
    for name, entries in after.items():
        if name.startswith(("events:", "outbox:item:")):
            assert all(entry.pop("format") == "text" for entry in entries), name
    assert after == before


def test_a_pinned_rollout_is_advanced_by_its_pinned_policy_without_the_file(
    left: Any, tmp_path: Path
) -> None:
    found: Left = left("v3", "in-analysis")
    state, revision = found.store.load(found.rollout_id)
    assert state.policy_digest is not None
    runtime, queued = worker_over(found, tmp_path)
    (tmp_path / "policies" / "default-canary.yaml").unlink()  # gone, or edited: never read
    assert advance(runtime, found.rollout_id, revision) == "stepped"
    after = found.store.load(found.rollout_id)
    assert after.revision == revision + 1 and after.state.policy_digest == state.policy_digest
    assert queued.advance and queued.advance[-1][:2] == (found.rollout_id, revision + 1)
