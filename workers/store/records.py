"""The records the store keeps, their codec, and the format each carries across upgrades.

A rollout's state, its audit events and its outbox items are JSON text in Redis (or in the
memory store's dicts); ``encode_*`` write them and ``decode_*`` read them back, so both stores
keep exactly the same strings. Leases, idempotency keys (a rollout id and a digest) and the
indexes hold plain strings, which need no format; so does a pinned policy (``policy:<digest>``),
the policy file's own text, keyed by its sha256 (``policy_digest``) and never rewritten.

Canarist is upgraded while rollouts are in flight, and for a while (a rolling upgrade, or one
undone) two releases share the store. So each record says the format that wrote it, and a
release reads the formats it knows and refuses the others by name (``UnsupportedFormat``)::

    record        its format                                  writes  reads
    rollout       "format" in the state's JSON                  1 to 6  1 to 6
    audit event   "format" beside "event" in the stream entry   1       0, 1
    outbox item   "format" field of the item's hash              3       0-3

Format 0 is a record without the field: the events and outbox items of releases before
formats, read as they always were. Rollouts have said format 1 since the first release. The
event's and the item's formats sit beside their JSON, not in it, because the release before
formats reads an unknown key in an event or an action as corrupt, and ignores a field beside:
it still reads what this release writes, but for outbox items of formats 2 and 3.

Rollout format 2 is a rollout whose spec says something the release before could not honour
(``workers.state.SPEC_KEYS_SINCE_2``): a fresh baseline (``fresh_baseline_selector``) or a start
from a manifest change (``from_manifest``). A rollout using neither is written in format 1
without those keys, so the release before carries it on during an upgrade; a format-2 rollout
it refuses by name rather than judge it against the stable fleet or alert without the Git hint.

Rollout format 3 is a rollout that pinned its policy at submit: it has ``policy_digest``, the key
of the policy's text in the store (workers/policies.py), and may have any key of
``SPEC_KEYS_SINCE_2`` too (format 3 reads them all). Every rollout this release submits is
pinned, so it writes format 3; a rollout of formats 1 and 2 (submitted before pinning) has no
digest, keeps re-reading its policy file by name as before, and is written back in its own
format. A release before pinning
refuses a format-3 rollout by name rather than judge it by the file as edited since.

Rollout format 4 is a rollout whose traffic is sticky (``spec.traffic.sticky``: a split keyed on
a user, not a request), and may have any key of format 3 too. A rollout without it leaves the key
out and keeps its format. A release before sticky refuses a format-4 rollout by name rather than
split each user's requests between the versions (or read the key as a corrupt record).

Rollout format 5 is a rollout with HTTP hooks to call (``hook_due``, ``hook_at``: a
pre-rollout or confirm-promotion gate it holds at, a post hook not yet answered). A release
before hooks would never call them and so hold the gate for ever; it refuses the record by name.
A rollout with no hook due leaves both keys out and keeps its format (3, or 4 if sticky).

Outbox format 2 adds ``occurred_at`` to a ``Notify`` payload (when the engine decided). A
release that reads formats 0 and 1 only would read that key as a malformed action and give the
alert up; with the format bumped it retries the item, unread, until a worker of this release
delivers it. Items of formats 0 and 1 carry no ``occurred_at``: delivery recovers it from the
dedupe key and the audit trail, as those releases did (``delivery.legacy_occurred_at``).

Rollout format 6 is a rollout in phase ``awaiting_approval`` (the manual confirm-promotion
gate, ``workers.state.AWAITING_APPROVAL_FORMAT``), which a release before the gate does not know:
it refuses the record by name. The phase is left by an approval or an abort, and the record is
then written in its format before (3 for a pinned rollout, 4 for a sticky one).

Outbox format 3 adds notice kinds (``started``, ``stage``, ``awaiting_approval``: see
``workers.actions.NotifyKind``) that a release before them cannot render: it would fail to build
the notice and, after its retries, give it up. With the format bumped for every item it writes,
such a release retries each item, unread, until a worker of this release delivers it (as with
format 2, the item's payload is unchanged otherwise: this release reads formats 0-2 as before).

What becomes of a record this release cannot read: a rollout's ``load`` raises (the task and the API
report it; nothing writes over it, since every save follows a load), and a listing leaves it out
with a log line; an event reads as an ``unreadable_event`` that says why, so the trail and the
report of its rollout still show; an outbox item's ``action`` raises, and delivery retries it
later (a worker of the release that wrote it delivers it). An event in a format read here whose
kind this release does not know is no unreadable record: it is read, its kind kept as the plain
string stored (``workers.actions.event_kind``), shown as written and matched by no reader.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from workers.actions import (
    Action,
    EventKind,
    Notify,
    RecordEvent,
    action_from_record,
    action_record,
    event_kind,
)
from workers.errors import CorruptRecord, UnsupportedFormat
from workers.metrics import rollout_log
from workers.state import PINNED_POLICY_FORMAT, RECORD_FORMATS, RolloutState


class RecordKind(StrEnum):
    """A kind of stored record, as messages name it."""

    ROLLOUT = "rollout"
    EVENT = "audit event"
    OUTBOX_ITEM = "outbox item"


@dataclass(frozen=True)
class Format:
    """The format this release writes for a kind of record, and the formats it reads."""

    writes: int
    reads: frozenset[int]


FORMATS = {
    # as submitted now: 3 (pinned), 4 if sticky, 5 while a hook is due, 6 awaiting approval;
    # 1 or 2 from before pinning
    RecordKind.ROLLOUT: Format(PINNED_POLICY_FORMAT, RECORD_FORMATS),
    RecordKind.EVENT: Format(1, frozenset({0, 1})),
    RecordKind.OUTBOX_ITEM: Format(3, frozenset({0, 1, 2, 3})),
}
EVENT_FORMAT = FORMATS[RecordKind.EVENT].writes
OUTBOX_FORMAT = FORMATS[RecordKind.OUTBOX_ITEM].writes


def policy_digest(text: str) -> str:
    """The key of a pinned policy's text: sha256 of its bytes (UTF-8), in hex."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def check_format(kind: RecordKind, record_id: str, stored: object) -> int:
    """The format of a record as stored (a number, or its digits; absent: 0) if this release
    reads it; UnsupportedFormat if not, CorruptRecord if it is no format number at all."""
    if stored is None:
        found = 0
    elif isinstance(stored, int) and not isinstance(stored, bool) and stored >= 0:
        found = stored
    elif isinstance(stored, str) and stored.isascii() and stored.isdigit():
        found = int(stored)
    else:
        raise CorruptRecord(f"{kind} {record_id}: its format {stored!r} is no format number")
    if found not in FORMATS[kind].reads:
        raise UnsupportedFormat(kind, record_id, found, FORMATS[kind].reads)
    return found


@dataclass(frozen=True)
class AuditEvent:
    """One line of a rollout's audit trail; ``id`` orders it (a Redis stream id)."""

    id: str
    rollout_id: str
    revision: int  # the revision the event's step saved
    at: float  # the step's time: the state's updated_at
    kind: EventKind | str  # a plain string: a kind this release does not know (event_kind)
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
    format: int = OUTBOX_FORMAT  # as stored; the payload is read only in a format read here

    @property
    def action(self) -> Action:
        """The action to deliver: UnsupportedFormat if this release does not read the item's
        format (a worker of a release that does delivers it), ValueError if it does not parse."""
        check_format(RecordKind.OUTBOX_ITEM, self.id, self.format)
        return action_from_record(self.payload)


def encode_state(state: RolloutState) -> str:
    """Canonical JSON, so a replayed save compares equal to the stored record."""
    return json.dumps(state.to_record(), sort_keys=True, separators=(",", ":"))


def decode_state(text: str, rollout_id: str) -> RolloutState:
    """The rollout stored as ``text``: UnsupportedFormat if this release does not read its
    format, CorruptRecord if it does not parse."""
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise CorruptRecord(f"rollout {rollout_id}: {exc}") from exc
    if not isinstance(record, dict):
        raise CorruptRecord(f"rollout {rollout_id}: not a JSON object")
    check_format(RecordKind.ROLLOUT, rollout_id, record.get("format"))
    try:
        return RolloutState.from_record(record)
    except (ValueError, TypeError, AttributeError) as exc:
        raise CorruptRecord(f"rollout {rollout_id}: {exc}") from exc


def listed(rollout_id: str, text: str) -> RolloutState | None:
    """The rollout for a listing, or None when this release cannot read it: logged, and left
    out so that it hides no other (``load`` answers why, where the rollout is shown)."""
    try:
        return decode_state(text, rollout_id)
    except CorruptRecord as exc:
        rollout_log(rollout_id).error("left out of the listing: %s", exc)
        return None


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


def event_fields(text: str) -> dict[str, str]:
    """The fields of an event's stream entry: its JSON, and the format beside it."""
    return {"event": text, "format": str(EVENT_FORMAT)}


def decode_event(event_id: str, fields: Mapping[str, str], rollout_id: str) -> AuditEvent:
    """The event of a stream entry; one this release cannot read is an ``unreadable_event``
    saying why (its time is when the store appended it), never an error: one bad line must
    not hide a rollout's trail, nor break its report."""
    where = f"{event_id} of rollout {rollout_id}"
    try:
        check_format(RecordKind.EVENT, where, fields.get("format"))
        stored = json.loads(fields["event"])
        if not isinstance(stored.get("kind"), str):
            raise TypeError(f"its kind {stored.get('kind')!r} is no string")
        return AuditEvent(event_id, **{**stored, "kind": event_kind(stored["kind"])})
    except UnsupportedFormat as exc:
        problem, data = str(exc), {"format": exc.found}
    except (CorruptRecord, KeyError, ValueError, TypeError) as exc:
        problem, data = f"{RecordKind.EVENT} {where} does not parse: {exc}", {}
    appended_at = event_position(event_id)[0] / 1000
    unreadable = EventKind.UNREADABLE_EVENT
    return AuditEvent(event_id, rollout_id, 0, appended_at, unreadable, problem, None, data)


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
    """An outbox item from its stored fields (a Redis hash's, or the memory store's); the
    payload of a format this release does not read is left unread, for ``action`` to refuse."""
    item_id, stored = fields["id"], fields.get("format")
    try:
        found = check_format(RecordKind.OUTBOX_ITEM, item_id, stored)
    except UnsupportedFormat as exc:
        found, payload = exc.found, {}
    else:
        payload = json.loads(fields["payload"])
    return OutboxItem(
        item_id,
        fields["rollout_id"],
        payload,
        int(fields["attempts"]),
        fields.get("last_error"),
        fields.get("claimed_by"),
        found,
    )
