from __future__ import annotations

from datetime import timedelta

import pytest

from analyzer.policy.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("1d", 86400),
        (45, 45),
        ("1.5m", 90),
        ("1h 30m", 5400),
        ("90s", 90),
    ],
)
def test_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["5 minutes", "", "m", "-5s", -1, "5x", True, None])
def test_rejects(text: object) -> None:
    with pytest.raises(ValueError, match=r"bad duration|negative"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("10 minutes", "write 10m"),
        ("1 hour 30 minutes", "write 1h30m"),
        ("5 m", "write 5m"),
        ("soon", "expected e.g. 30s, 5m, 1h30m"),
    ],
)
def test_a_rejected_duration_says_what_to_write(text: str, fix: str) -> None:
    with pytest.raises(ValueError, match=f"bad duration '{text}': {fix}"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(60, "1m"), (90, "90s"), (3600, "1h"), (0.25, "250ms"), (7200, "2h")]
)
def test_format_is_a_prometheus_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text).total_seconds() == seconds
