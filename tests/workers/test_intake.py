"""Intake over the in-memory store: validation with clear messages, idempotency keys, the app's
single lane (superseding), commands, and reads. The fake clock and the list of enqueued
``advance`` calls stand in for time and Celery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.workers.conftest import T0, FakeClock, Queued, job, trail
from workers.actions import Notify, Released, Tick
from workers.delivery import Delivery
from workers.errors import (
    Conflict,
    InvalidJobError,
    NotFound,
    TemporaryError,
    UnknownPolicyError,
)
from workers.intake import Intake, RolloutJob
from workers.state import Phase
from workers.store import MemoryStateStore


def refused(**fields: Any) -> str:
    """The validation message for a job with these fields changed."""
    with pytest.raises(ValidationError) as caught:
        job(**fields)
    return str(caught.value)


# -- the job model -----------------------------------------------------------------------------


def test_the_local_platform_takes_a_command_line_as_its_image() -> None:
    command = "python -m canarist.demo.service --port {port} --version v2"
    assert job(platform="local", image=command).image == command


def test_a_valid_job_normalises_its_selectors() -> None:
    valid = job(baseline='{ app = "checkout" , version="v1" }')
    assert valid.baseline == 'app="checkout",version="v1"'
    assert valid.platform == "observe"
    with pytest.raises(ValidationError, match="frozen"):
        setattr(valid, "app", "cart")  # noqa: B010 - the assignment itself is under test


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"app": "Checkout"}, "app"),
        ({"app": "-checkout"}, "app"),
        ({"namespace": "a" * 64}, "namespace"),
        ({"version": "v 2"}, "version"),
        ({"policy": "../etc/passwd"}, "policy"),
        ({"platform": "kubernetez"}, "unknown platform 'kubernetez'"),
        ({"baseline": "app=checkout"}, "expected a quoted value"),
        ({"canary": 'app="checkout",version="v1"'}, "the same series"),
        ({"replicas": 3}, "Extra inputs are not permitted"),
        ({"idempotency_key": "has space"}, "idempotency_key"),
        ({"image": "registry/checkout:v2 --privileged"}, "must not contain whitespace"),
        ({"image": "checkout\nv2"}, "image"),
        ({"platform": "local", "image": "python -m svc --version v2"}, "must contain {port}"),
    ],
)
def test_invalid_jobs_are_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    assert message in refused(**fields)


# -- submit ----------------------------------------------------------------------------------


def test_submit_creates_a_pending_rollout_due_now_and_enqueues_it(
    intake: Intake, memory_store: MemoryStateStore, queued: Queued
) -> None:
    submitted = intake.submit(job(image="registry.example/checkout:v2"), "alice")

    assert submitted.created and submitted.superseded is None
    state, revision = memory_store.load(submitted.rollout_id)
    assert (state.phase, revision, state.next_due_at) == (Phase.PENDING, 1, T0)
    assert state.spec.image == "registry.example/checkout:v2"
    assert state.spec.strategy == "canary"  # pinned at submit: the platform scales by it
    assert memory_store.due(T0) == [submitted.rollout_id]  # the reconciler's net from the start
    assert queued.advance == [(submitted.rollout_id, 1, 0.0)]
    (event,) = trail(memory_store, submitted.rollout_id)
    assert (event.kind, event.actor) == ("submitted", "alice")
    assert event.data["version"] == "v2"


def test_an_unknown_policy_is_not_found(intake: Intake, queued: Queued) -> None:
    with pytest.raises(UnknownPolicyError, match="no policy 'nope'"):
        intake.submit(job(policy="nope"), "alice")
    assert queued.advance == []


def test_the_policys_args_must_be_satisfied(intake: Intake, memory_store: MemoryStateStore) -> None:
    with pytest.raises(InvalidJobError, match="needs a value for arg 'route'"):
        intake.submit(job(policy="with-args"), "alice")
    with pytest.raises(InvalidJobError, match="declares no arg colour"):
        intake.submit(job(policy="with-args", args={"route": "/api", "colour": "red"}), "alice")
    submitted = intake.submit(job(policy="with-args", args={"route": "/api"}), "alice")
    spec = memory_store.load(submitted.rollout_id).state.spec
    assert spec.args_map == {"route": "/api", "quantile": "0.99"}  # defaults filled in


def test_a_broken_policy_file_is_reported_with_its_file_and_line(
    intake: Intake, policy_dir: Path
) -> None:
    (policy_dir / "broken.yaml").write_text("name: broken\nanalysis:\n  interval: soon\n")
    with pytest.raises(InvalidJobError, match=r"broken.yaml:3: analysis.interval"):
        intake.submit(job(policy="broken"), "alice")


def test_an_idempotency_key_returns_the_same_rollout_once(
    intake: Intake, memory_store: MemoryStateStore, queued: Queued
) -> None:
    first = intake.submit(job(idempotency_key="ci-4711"), "alice")
    again = intake.submit(job(idempotency_key="ci-4711"), "alice")

    assert again.rollout_id == first.rollout_id and not again.created
    assert len(memory_store.list_rollouts()) == 1
    assert len(queued.advance) == 1
    with pytest.raises(InvalidJobError, match="a different job") as refused:
        intake.submit(job(idempotency_key="ci-4711", version="v3"), "alice")
    assert first.rollout_id not in str(refused.value)  # nothing about another tenant's job


def test_a_new_version_supersedes_the_apps_latest_rollout(
    intake: Intake, memory_store: MemoryStateStore, clock: FakeClock, queued: Queued
) -> None:
    first = intake.submit(job(version="v2"), "alice")
    clock.advance(1)
    second = intake.submit(job(version="v3"), "bob")

    assert second.superseded == first.rollout_id
    old = memory_store.load(first.rollout_id).state
    assert (old.phase, old.superseded_by) == (Phase.ABORTED, second.rollout_id)
    new = memory_store.load(second.rollout_id).state
    assert (new.phase, new.supersedes) == (Phase.PENDING, first.rollout_id)
    # The old one hands its lane over through the outbox: delivering that starts the new one.
    assert queued.outbox_wakes == 1
    handed: list[tuple[str, str]] = []

    def release(successor: str, predecessor: str) -> None:
        handed.append((successor, predecessor))
        intake.tell(successor, Released(predecessor))

    settled = Delivery(memory_store, {}, clock, release, record=intake.record).run()
    assert [item.outcome for item in settled] == ["delivered"]
    assert handed == [(second.rollout_id, first.rollout_id)]
    assert memory_store.load(second.rollout_id).state.phase is Phase.PROGRESSING


def test_superseding_an_active_rollout_rolls_it_back_without_an_alert(
    intake: Intake, memory_store: MemoryStateStore, clock: FakeClock
) -> None:
    first = intake.submit(job(version="v2"), "alice")
    intake.tell(first.rollout_id, Released("nobody"))  # ignored: it supersedes nothing
    intake.tell(first.rollout_id, Tick())  # starts it: PROGRESSING, awaiting its first weight
    assert memory_store.load(first.rollout_id).state.phase is Phase.PROGRESSING

    intake.submit(job(version="v3"), "bob")

    old = memory_store.load(first.rollout_id).state
    assert old.phase is Phase.ABORTING and old.awaiting is not None
    actions = [item.action for item in memory_store.outbox.claim("t", clock() + 1, 60)]
    notices = [action.kind for action in actions if isinstance(action, Notify)]
    assert sorted(notices) == ["stage", "started"]  # the start, for routes that follow it


class LaneRace(MemoryStateStore):
    """Another submission for the app lands between our read of the lane and our create."""

    def __init__(self, clock: FakeClock, racer: Intake | None = None) -> None:
        super().__init__(clock)
        self.racer, self.raced = racer, False

    def latest_for(self, app: str, namespace: str) -> str | None:
        latest = super().latest_for(app, namespace)
        if self.racer is not None and not self.raced:
            self.raced = True
            self.racer.submit(job(version="v9"), "racer")
        return latest


def test_a_submission_that_loses_the_lane_race_supersedes_the_winner(
    policy_dir: Path, clock: FakeClock, queued: Queued
) -> None:
    store = LaneRace(clock)
    store.racer = Intake(store, policy_dir, clock, queued.enqueue, alert_routes={"oncall"})
    intake = Intake(store, policy_dir, clock, queued.enqueue, alert_routes={"oncall"})

    submitted = intake.submit(job(version="v3"), "alice")

    (winner,) = [state for state in intake.list() if state.spec.version == "v9"]
    assert submitted.superseded == winner.id
    assert store.load(winner.id).state.superseded_by == submitted.rollout_id


# -- commands and reads ----------------------------------------------------------------------


def test_abort_of_a_pending_rollout_aborts_it_with_an_alert(
    intake: Intake, memory_store: MemoryStateStore, queued: Queued, clock: FakeClock
) -> None:
    submitted = intake.submit(job(), "alice")
    result = intake.command(submitted.rollout_id, "abort", "carol", reason="wrong build")
    state = result.state

    assert result.applied and result.ignored is None
    assert state.phase is Phase.ABORTED
    assert "abort by carol: wrong build" in (state.abort_reason or "")
    assert queued.outbox_wakes == 1
    (item,) = memory_store.outbox.claim("t", clock(), 60)
    assert isinstance(item.action, Notify) and item.action.kind == "aborted"
    assert queued.advance == [(submitted.rollout_id, 1, 0.0)]  # nothing left to schedule


def test_a_command_that_does_not_apply_is_recorded_as_ignored(
    intake: Intake, memory_store: MemoryStateStore
) -> None:
    submitted = intake.submit(job(), "alice")
    result = intake.command(submitted.rollout_id, "resume", "carol", reason="try it")
    state, events = intake.get(submitted.rollout_id)
    assert state.phase is Phase.PENDING and result.state == state
    assert events[-1].kind == "command_ignored" and events[-1].actor == "carol"
    assert not result.applied
    assert result.ignored == events[-1].message
    assert result.ignored == "resume by carol: try it does not apply: the rollout is pending"


def test_a_command_is_ignored_for_its_own_step_not_for_an_earlier_refusal(
    intake: Intake,
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id
    assert not intake.command(rollout_id, "pause", "carol").applied  # pending: no pause
    assert intake.command(rollout_id, "abort", "carol").applied


def test_commands_on_unknown_rollouts_are_not_found(intake: Intake) -> None:
    with pytest.raises(NotFound, match="no rollout nope"):
        intake.command("nope", "abort", "carol")
    with pytest.raises(NotFound, match="no rollout nope"):
        intake.get("nope")
    with pytest.raises(InvalidJobError, match="unknown command"):
        intake.command("nope", "explode", "carol")  # type: ignore[arg-type]


class FlakySaves(MemoryStateStore):
    """The first ``conflicts`` saves lose a compare-and-set race."""

    def __init__(self, clock: FakeClock, conflicts: int) -> None:
        super().__init__(clock)
        self.conflicts = conflicts

    def save(self, *args: Any, **kwargs: Any) -> int:
        if self.conflicts > 0:
            self.conflicts -= 1
            raise Conflict("another worker saved first")
        return super().save(*args, **kwargs)


def test_commands_retry_on_conflict_and_give_up_after_a_while(
    policy_dir: Path, clock: FakeClock, queued: Queued
) -> None:
    store = FlakySaves(clock, conflicts=0)
    intake = Intake(store, policy_dir, clock, queued.enqueue, alert_routes={"oncall"})
    rollout_id = intake.submit(job(), "alice").rollout_id

    store.conflicts = 2
    assert intake.command(rollout_id, "abort", "carol").state.phase is Phase.ABORTED

    other = intake.submit(job(app="cart"), "alice").rollout_id
    store.conflicts = 100
    with pytest.raises(TemporaryError, match="keeps changing"):
        intake.command(other, "abort", "carol")


def test_list_filters_by_namespace_newest_first(intake: Intake, clock: FakeClock) -> None:
    intake.submit(job(app="cart"), "alice")
    clock.advance(1)
    intake.submit(job(app="search", namespace="web"), "alice")
    clock.advance(1)
    intake.submit(job(app="checkout"), "alice")
    assert [state.app for state in intake.list("shop")] == ["checkout", "cart"]
    assert [state.app for state in intake.list()] == ["checkout", "search", "cart"]


def test_job_payloads_round_trip_as_json() -> None:
    payload = job(args={"route": "/api"}, idempotency_key="k1").model_dump(mode="json")
    assert RolloutJob.model_validate(payload) == job(args={"route": "/api"}, idempotency_key="k1")
