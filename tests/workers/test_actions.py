"""Actions travel through the outbox and logs as JSON and read back equal."""

from __future__ import annotations

import json

import pytest

from workers.actions import (
    Action,
    EnsureCanary,
    Match,
    Notify,
    Promote,
    RecordEvent,
    Release,
    Rollback,
    ScaleDownOld,
    ScaleNew,
    Schedule,
    SetTraffic,
    SwitchActive,
    action_from_record,
    action_record,
)

EVERY_ACTION: list[Action] = [
    EnsureCanary(),
    SetTraffic(25, (Match("header", "x-region", "KR"), Match("cookie", "c", ".*", regex=True))),
    ScaleNew(percent=50),
    ScaleNew(replicas=2),
    SwitchActive(),
    ScaleDownOld(),
    Promote(),
    Rollback("error-ratio failed", switch_back=True),
    Notify(
        "aborted",
        "r1",
        "checkout",
        "shop",
        "v2",
        "error-ratio failed",
        ("oncall",),
        {"outcome": "fail", "metrics": [{"name": "error-ratio"}]},
        "r1/1/aborted",
    ),
    RecordEvent("phase", "aborting", {"from": "progressing", "to": "aborting"}, "alice"),
    Schedule(1_000_060.5),
    Release("r2"),
]


@pytest.mark.parametrize("action", EVERY_ACTION, ids=lambda action: type(action).__name__)
def test_every_action_reads_back_equal_from_json(action: Action) -> None:
    record = json.loads(json.dumps(action_record(action)))
    assert action_from_record(record) == action


def test_a_record_names_its_type() -> None:
    assert action_record(SetTraffic(25)) == {"type": "set_traffic", "weight": 25, "match": []}


def test_unknown_types_and_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown action type 'reboot'"):
        action_from_record({"type": "reboot"})
    with pytest.raises(ValueError, match="bad set_traffic action"):
        action_from_record({"type": "set_traffic", "weight": 25, "percent": 3})
