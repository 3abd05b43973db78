"""The suite model: the times a person may write, read against the clock the caller passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from pydantic import ValidationError

from analyzer.backtest import Suite

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SUITE = """
policy: p.yaml
cases:
  - {name: rfc, start: 2026-01-05T10:00:00Z, end: "2026-01-05T12:40:00+02:00"}
  - {name: unix, start: 1767607200, end: "1767609600.5"}
  - {name: relative, start: now-1h30m, end: now}
"""


def cases(text: str, now: datetime | None = NOW) -> dict[str, tuple[datetime, datetime]]:
    data = yaml.safe_load(text)
    for case in data["cases"]:
        case.update(baseline='app="a",version="v1"', canary='app="a",version="v2"')
    suite = Suite.model_validate(data, context={"now": now} if now else None)
    return {case.name: (case.start, case.end) for case in suite.cases}


def test_times_are_rfc_3339_unix_seconds_or_relative_to_the_given_now() -> None:
    ten = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert cases(SUITE) == {
        "rfc": (ten, ten + timedelta(minutes=40)),
        "unix": (ten, ten + timedelta(minutes=40, seconds=0.5)),
        "relative": (NOW - timedelta(minutes=90), NOW),
    }


def test_a_relative_time_without_a_clock_or_a_bad_time_is_refused() -> None:
    with pytest.raises(ValidationError, match="a relative time needs the current time"):
        cases(SUITE, now=None)
    for bad, reason in [
        ("yesterday", "use RFC 3339, Unix seconds, now or now-30m"),
        ("now-soon", "bad duration 'soon'"),
        ("1e400", "not a time in Unix seconds"),
    ]:
        with pytest.raises(ValidationError, match=reason):
            cases(SUITE.replace("start: now-1h30m", f"start: {bad}"))
