"""The records the store keeps, and their codec: both stores write and read exactly these strings.

A rollout's state, its audit events and its outbox items are JSON text in Redis (or in the
memory store's dicts); ``encode_*`` write them and ``decode_*`` read them back, so whatever one
store cannot keep, neither can. Leases, idempotency keys (a rollout id and a digest) and the
indexes hold plain strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workers.actions import Action, Notify, RecordEvent, action_from_record, action_record
from workers.errors import CorruptRecord
from workers.state import RolloutState


@dataclass(frozen=True)
class AuditEvent:
    """One line of a rollout's audit trail; ``id`` orders it (a Redis stream id)."""

    id: str
    rollout_id: str
    revision: int  # the revision the event's step saved
    at: float  # the step's time: the state's updated_at
    kind: str
    message: str
    actor: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxItem:
    """A side effect waiting for delivery; ``id`` is its dedupe key."""

    id: str
    rollout_id: str
    payload: Mapping[str, Any]  # action_record() of the action
    attempts: int = 0  # claims so far, including the one that returned it
    last_error: str | None = None
    claimed_by: str | None = None

    @property
    def action(self) -> Action:
        return action_from_record(self.payload)


def encode_state(state: RolloutState) -> str:
    """Canonical JSON, so a replayed save compares equal to the stored record."""
    return json.dumps(state.to_record(), sort_keys=True, separators=(",", ":"))


def decode_state(text: str, where: str) -> RolloutState:
    try:
        return RolloutState.from_record(json.loads(text))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CorruptRecord(f"{where}: {exc}") from exc


def encode_event(state: RolloutState, revision: int, event: RecordEvent) -> str:
    payload = {
        "rollout_id": state.id,
        "revision": revision,
        "at": state.updated_at,
        "kind": event.kind,
        "message": event.message,
        "actor": event.actor,
        "data": dict(event.data),
    }
    return json.dumps(payload, separators=(",", ":"))


def decode_event(event_id: str, text: str, where: str) -> AuditEvent:
    try:
        payload = json.loads(text)
        return AuditEvent(event_id, **payload)
    except (ValueError, TypeError) as exc:
        raise CorruptRecord(f"{where} event {event_id}: {exc}") from exc


def outbox_entries(
    state: RolloutState, revision: int, actions: Sequence[Action]
) -> list[tuple[str, str]]:
    """``(item id, payload JSON)`` per outbox item, first of each id kept.

    The id is the action's dedupe key; an action without one gets a key unique to this save
    (deduplicated only against a replay). A ``Notify`` to several routes becomes one item per
    route, ``{dedupe_key}>{route}``, carrying only that route: each route is delivered, retried
    and given up on its own. (Route names are policy names: they hold no ``>``.)
    """
    entries: dict[str, str] = {}
    for index, action in enumerate(actions):
        key = getattr(action, "dedupe_key", "") or f"{state.id}@{revision}#{index}"
        for item_id, item in _items_of(key, action):
            entries.setdefault(item_id, json.dumps(action_record(item), separators=(",", ":")))
    return list(entries.items())


def _items_of(key: str, action: Action) -> list[tuple[str, Action]]:
    if isinstance(action, Notify) and action.routes:
        return [(f"{key}>{route}", replace(action, routes=(route,))) for route in action.routes]
    return [(key, action)]


def event_position(event_id: str) -> tuple[int, int]:
    """A stream id ``"<ms>-<seq>"`` as a sortable pair; ValueError if it is not one."""
    millis, dash, sequence = event_id.partition("-")
    if not (dash and millis.isdigit() and sequence.isdigit()):
        raise ValueError(f"{event_id!r} is not an event id like '1718000000000-0'")
    return int(millis), int(sequence)


def check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    return limit


def decode_item(fields: Mapping[str, Any]) -> OutboxItem:
    """An outbox item from its stored fields (a Redis hash's, or the memory store's)."""
    return OutboxItem(
        fields["id"],
        fields["rollout_id"],
        json.loads(fields["payload"]),
        int(fields["attempts"]),
        fields.get("last_error"),
        fields.get("claimed_by"),
    )
