"""Durations as SREs write them (``30s``, ``5m``, ``1h30m``), parsed once into ``timedelta``.

Prometheus and Argo Rollouts use Go's duration syntax, so policies do too; a bare number means
seconds. Anything else is rejected with a message that shows the expected form.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WORDS = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_WORD_UNITS = {
    "ms": ("millisecond", "milliseconds", "msec", "msecs"),
    "s": ("sec", "secs", "second", "seconds"),
    "m": ("min", "mins", "minute", "minutes"),
    "h": ("hr", "hrs", "hour", "hours"),
    "d": ("day", "days"),
}
DURATION_PATTERN = r"^( *[0-9]+(\.[0-9]+)?(ms|s|m|h|d))+ *$"  # `1h 30m` too
DURATION_JSON_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "number", "minimum": 0},
    ],
    "description": "A duration such as 30s, 5m or 1h30m; a bare number is seconds.",
}


def parse_duration(value: object) -> timedelta:
    """Parse ``1h30m``/``45s``/``250ms`` or a number of seconds; raise ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: expected e.g. 30s, 5m, 1h30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"bad duration {value!r}: must not be negative")
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r}: expected e.g. 30s, 5m, 1h30m")
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"bad duration {value!r}: {_suggestion(value)}")
    compact = value.replace(" ", "")  # `1h 30m` is `1h30m`
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(compact))
    return timedelta(seconds=seconds)


def _suggestion(value: str) -> str:
    """``write 10m`` for ``10 minutes``; else the forms that are accepted."""
    parts = _WORDS.findall(value.strip().lower())
    units = {word: unit for unit, words in _WORD_UNITS.items() for word in (unit, *words)}
    written = "".join(_WORDS.sub("", value.strip().lower()).split())
    if parts and not written.strip(",") and all(word in units for _, word in parts):
        return f"write {''.join(number + units[word] for number, word in parts)}"
    return "expected e.g. 30s, 5m, 1h30m (units ms, s, m, h, d; a bare number is seconds)"


def format_duration(value: timedelta) -> str:
    """Render a duration the way Prometheus accepts it in a range selector (``90s``, ``1500ms``)."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    seconds = milliseconds // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(DURATION_JSON_SCHEMA),
]
