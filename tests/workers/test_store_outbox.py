"""The outbox contract, against Redis and in memory: saved with the step, one item per (notice,
route), deduplicated by key, claimed with an expiry so a crashed worker's items come back,
acknowledged, failed and retried, or given up for good.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.workers.test_store import T0, each_store, race, rollout, stepped
from workers.actions import Notify, Release
from workers.errors import NotFound
from workers.state import Phase, RolloutState
from workers.store import StateStore

LATER = T0 + 3600


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    yield from each_store(request)


def notice(state: RolloutState, kind: str = "aborted", key: str | None = None) -> Notify:
    dedupe_key = f"{state.id}/{state.attempt}/{kind}" if key is None else key
    evidence = {"outcome": "fail", "metrics": [{"name": "errors", "p_value": 0.001}]}
    return Notify(
        kind,  # type: ignore[arg-type]
        state.id,
        state.app,
        state.namespace,
        state.spec.version,
        "errors regressed",
        ("oncall",),
        evidence,
        dedupe_key,
    )


def started(store: StateStore, rollout_id: str = "r1") -> RolloutState:
    state = rollout(rollout_id, app=rollout_id)
    store.create(state)
    return state


def test_items_are_saved_with_the_step_and_read_back_as_actions(store: StateStore) -> None:
    state = started(store)
    aborting = stepped(state, phase=Phase.ABORTING)
    store.save(aborting, 1, outbox=[notice(state), Release("r2")])
    items = store.outbox.claim("worker-a", now=LATER, lease_seconds=30)
    assert [item.action for item in items] == [notice(state), Release("r2")]
    assert [item.id for item in items] == ["r1/1/aborted>oncall", "r1@2#1"]
    assert {item.rollout_id for item in items} == {"r1"}
    assert [(item.attempts, item.claimed_by, item.last_error) for item in items] == [
        (1, "worker-a", None),
        (1, "worker-a", None),
    ]


def test_an_item_is_claimable_from_the_time_of_its_step(store: StateStore) -> None:
    state = started(store)
    store.save(stepped(state, 60), 1, outbox=[notice(state)])
    assert store.outbox.claim("w", now=T0 + 59, lease_seconds=30) == []
    assert len(store.outbox.claim("w", now=T0 + 60, lease_seconds=30)) == 1


def test_items_are_claimed_oldest_first_up_to_the_limit(store: StateStore) -> None:
    for offset, name in [(30, "a"), (10, "b"), (20, "c")]:
        state = started(store, name)
        store.save(stepped(state, offset), 1, outbox=[notice(state)])
    first = store.outbox.claim("w", now=LATER, lease_seconds=30, limit=2)
    assert [item.rollout_id for item in first] == ["b", "c"]
    assert [item.rollout_id for item in store.outbox.claim("w", LATER, 30)] == ["a"]
    with pytest.raises(ValueError, match="limit"):
        store.outbox.claim("w", LATER, 30, limit=0)


def test_a_dedupe_key_is_enqueued_once_even_after_delivery(store: StateStore) -> None:
    state = started(store)
    aborting = stepped(state, phase=Phase.ABORTING)
    store.save(aborting, 1, outbox=[notice(state), notice(state)])
    store.save(stepped(aborting), 2, outbox=[notice(state)])  # the engine re-asserts
    (item,) = store.outbox.claim("w", now=LATER, lease_seconds=30)
    store.outbox.ack(item.id)
    store.save(stepped(aborting, 120, phase=Phase.ABORTED), 3, outbox=[notice(state)])
    assert store.outbox.claim("w", now=LATER + 1e6, lease_seconds=30) == []
    store.save(stepped(aborting, 180), 4, outbox=[notice(state, "failed")])  # a new key
    assert [item.id for item in store.outbox.claim("w", LATER, 30)] == ["r1/1/failed>oncall"]


def test_a_claimed_item_is_hidden_until_its_claim_expires(store: StateStore) -> None:
    state = started(store)
    store.save(stepped(state), 1, outbox=[notice(state)])
    (first,) = store.outbox.claim("crashed", now=LATER, lease_seconds=30)
    assert store.outbox.claim("worker-b", now=LATER + 29, lease_seconds=30) == []
    (again,) = store.outbox.claim("worker-b", now=LATER + 30, lease_seconds=30)
    assert again.id == first.id
    assert (again.attempts, again.claimed_by) == (2, "worker-b")


def test_an_acknowledged_item_is_never_claimed_again(store: StateStore) -> None:
    state = started(store)
    store.save(stepped(state), 1, outbox=[notice(state)])
    (item,) = store.outbox.claim("w", now=LATER, lease_seconds=30)
    store.outbox.ack(item.id)
    store.outbox.ack(item.id)  # a retried ack is harmless
    store.outbox.fail(item.id, "late failure report", LATER)  # and cannot undo delivery
    assert store.outbox.claim("w", now=LATER + 1e6, lease_seconds=30) == []
    with pytest.raises(NotFound, match="no outbox item nope"):
        store.outbox.ack("nope")
    with pytest.raises(NotFound):
        store.outbox.fail("nope", "boom", LATER)


def test_a_failed_item_is_retried_from_retry_at_with_its_error(store: StateStore) -> None:
    state = started(store)
    store.save(stepped(state), 1, outbox=[notice(state)])
    (item,) = store.outbox.claim("w", now=LATER, lease_seconds=30)
    store.outbox.fail(item.id, "alertmanager: 503", retry_at=LATER + 10)
    assert store.outbox.claim("w", now=LATER + 9, lease_seconds=30) == []
    (retry,) = store.outbox.claim("w2", now=LATER + 10, lease_seconds=30)
    assert (retry.attempts, retry.last_error, retry.claimed_by) == (2, "alertmanager: 503", "w2")
    store.outbox.fail(retry.id, "alertmanager: timeout", retry_at=LATER + 40)
    (third,) = store.outbox.claim("w", now=LATER + 40, lease_seconds=30)
    assert (third.attempts, third.last_error) == (3, "alertmanager: timeout")
    store.outbox.ack(third.id)
    assert store.outbox.claim("w", now=LATER + 1e6, lease_seconds=30) == []


def test_a_notice_to_two_routes_is_one_item_per_route(store: StateStore) -> None:
    state = started(store)
    both = replace(notice(state), routes=("oncall", "slack"))
    store.save(stepped(state), 1, outbox=[both])
    items = store.outbox.claim("w", now=LATER, lease_seconds=30)
    assert [(item.id, item.action) for item in items] == [
        ("r1/1/aborted>oncall", replace(both, routes=("oncall",))),
        ("r1/1/aborted>slack", replace(both, routes=("slack",))),
    ]
    store.outbox.ack(items[0].id)
    store.outbox.fail(items[1].id, "slack: 503", retry_at=LATER + 10)
    (retry,) = store.outbox.claim("w", now=LATER + 10, lease_seconds=30)
    assert retry.id == "r1/1/aborted>slack"  # the route that succeeded is not posted again


def test_a_notice_without_routes_stays_one_item(store: StateStore) -> None:
    state = started(store)
    store.save(stepped(state), 1, outbox=[replace(notice(state), routes=())])
    assert [item.id for item in store.outbox.claim("w", LATER, 30)] == ["r1/1/aborted"]


def test_an_item_given_up_is_never_claimed_again_and_still_dedupes(store: StateStore) -> None:
    state = started(store)
    store.save(stepped(state), 1, outbox=[notice(state)])
    (item,) = store.outbox.claim("w", now=LATER, lease_seconds=30)
    store.outbox.give_up(item.id, "alertmanager: 400 bad request")
    store.outbox.give_up(item.id, "again")  # a retried give-up is harmless
    store.outbox.fail(item.id, "late", LATER)  # and cannot bring it back
    store.outbox.ack(item.id)  # nor can a late ack
    store.save(stepped(state, 120), 2, outbox=[notice(state)])  # the engine re-asserts
    assert store.outbox.claim("w", now=LATER + 1e6, lease_seconds=30) == []
    with pytest.raises(NotFound, match="no outbox item nope"):
        store.outbox.give_up("nope", "boom")


def test_racing_workers_claim_each_item_once(store: StateStore) -> None:
    state = started(store)
    keys = [f"r1/{index}" for index in range(20)]
    store.save(stepped(state), 1, outbox=[notice(state, key=key) for key in keys])
    claims = race(8, lambda i: store.outbox.claim(f"w{i}", now=LATER, lease_seconds=30, limit=5))
    claimed = [item.id for items in claims for item in items]
    assert sorted(claimed) == sorted(f"{key}>oncall" for key in keys)
