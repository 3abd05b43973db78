"""How the report writes times, durations and numbers, and how it escapes what it did not write.

One place for these, so the header, the charts and the tables agree: times are UTC (an on-call
engineer compares them with Prometheus and logs, not with their own time zone), durations are
short (``4m 30s``), and every number is written for a person in its ``Unit``: e-values as
``1``, ``1,000``, ``1e6``; p-values as ``0.02``, ``3.2e-5``; latencies in ms (in s from 10 s);
shares and effects as percentages; bytes as MB and GB. No number is ever written with Python's
exponent (``1e+03``) or an SI suffix on an exponent (``1e+03M``). ``esc`` is the only way text
taken from data enters the page: metric names, reasons and messages come from users and
policies.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from analyzer.judges.decisions import format_evalue
from analyzer.judges.decisions import plain_scientific as scientific

_LARGE = ((1e12, "T"), (1e9, "B"), (1e6, "M"))  # above a million; below it, 999,999
_BYTES = ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"))
MISSING = "—"


class Unit(StrEnum):
    """What a number is, and so how it is written (``value_in``)."""

    RATIO = "ratio"  # a share or a relative change: a percentage
    SECONDS = "seconds"  # a latency
    BYTES = "bytes"
    NUMBER = "number"  # a count or any other value
    E_VALUE = "e-value"
    P_VALUE = "p-value"


def esc(value: object) -> str:
    """Text for HTML content or a double-quoted attribute."""
    return html.escape(str(value), quote=True)


def utc(moment: float | None, *, seconds: bool = True) -> str:
    """``2026-01-05 10:03:12 UTC``; an em dash when unknown."""
    if moment is None or not math.isfinite(moment):
        return MISSING
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(moment, UTC).strftime(shape) + " UTC"


def clock(moment: float, *, with_date: bool = False) -> str:
    """``10:03`` (``01-05 10:03`` when a chart spans days): axis labels."""
    shape = "%m-%d %H:%M" if with_date else "%H:%M"
    return datetime.fromtimestamp(moment, UTC).strftime(shape)


def duration(seconds: float | None) -> str:
    """``1h 4m``, ``4m 30s``, ``12s``."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    total = round(abs(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{amount}{unit}" for amount, unit in parts if amount][:2]
    return ("-" if seconds < 0 else "") + (" ".join(shown) or "0s")


def value_in(unit: Unit, value: float | None) -> str:
    """``value`` written in its unit."""
    return _WRITERS[unit](value)


def number(value: float | None) -> str:
    """A count or plain value: ``0.61``, ``999``, ``1,729``, ``999,999``, ``1.2M``, ``3.4B``,
    ``3.2e-5``; beyond trillions, ``1.2e15``."""
    special = _special(value)
    if special is not None:
        return special
    assert value is not None
    magnitude = abs(value)
    if 0 < magnitude < 1e-3:
        return scientific(value)
    if magnitude < 999.5:
        return significant(value, 3)
    if magnitude < 999_999.5:
        return f"{value:,.0f}"
    return _scaled(value, _LARGE, "", large=1e15)


def e_value(value: float | None) -> str:
    """An e-value or its bar: ``0.5``, ``1``, ``10``, ``1,000``, ``999,999``, ``1e6``, ``2.5e7``,
    written as the judges' sentences write it (analyzer.judges.decisions.format_evalue)."""
    special = _special(value)
    if special is not None:
        return special
    assert value is not None
    return format_evalue(value)


def p_value(value: float | None) -> str:
    """A p-value or its bar: ``1``, ``0.2``, ``0.02``, ``0.00047``, ``3.2e-5``."""
    special = _special(value)
    if special is not None:
        return special
    assert value is not None
    magnitude = abs(value)
    if magnitude >= 1:
        return e_value(value)  # a p-value is at most 1; a bar beyond it reads like an e-value
    return scientific(value) if 0 < magnitude < 1e-4 else significant(value, 2)


def percent(ratio: float | None, *, signed: bool = False) -> str:
    """``+325%``, ``0.932%``, ``25%``, ``1,200%``, ``1e-5%``: three significant digits."""
    special = _special(ratio)
    if special is not None:
        return special
    assert ratio is not None
    value = ratio * 100
    magnitude = abs(value)
    if magnitude >= 1e6 or 0 < magnitude < 1e-3:
        text = scientific(value)
    elif magnitude >= 100:
        text = f"{value:,.0f}"
    else:
        text = significant(value, 3)
    return ("+" if signed and not text.startswith("-") else "") + text + "%"


def seconds_value(value: float | None) -> str:
    """A latency: ``0 ms``, ``85 ms``, ``1,200 ms``, ``9,990 ms``, then ``12.3 s``."""
    special = _special(value)
    if special is not None:
        return special
    assert value is not None
    if abs(value) >= 9.9995:
        return f"{number(value)} s"
    milliseconds = value * 1000
    magnitude = abs(milliseconds)
    if magnitude >= 100:
        return f"{milliseconds:,.0f} ms"
    if 0 < magnitude < 1e-3:
        return f"{scientific(milliseconds)} ms"
    return f"{significant(milliseconds, 3)} ms"


def bytes_value(value: float | None) -> str:
    """A size in decimal units: ``512 B``, ``1.5 kB``, ``200 MB``, ``1.2 GB``, ``3 TB``."""
    special = _special(value)
    if special is not None:
        return special
    assert value is not None
    if abs(float(f"{value:.3g}")) < 1e3:
        return f"{number(value)} B"
    return _scaled(value, _BYTES, " ", large=1e18, unit=" B")


def significant(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, written out with thousands separators and
    without trailing zeros: ``12.3``, ``0.0123``, ``1,000`` (999.6 rounds up to it)."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    exponent = math.floor(math.log10(abs(value)))
    text = f"{value:,.{max(digits - 1 - exponent, 0)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _special(value: float | None) -> str | None:
    """The text of a missing or infinite value, else None."""
    if value is None or math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return None


def _scaled(
    value: float, scales: tuple[tuple[float, str], ...], gap: str, *, large: float, unit: str = ""
) -> str:
    """``value`` over the largest scale it reaches, once rounded to three digits (so that
    999,999,999 is ``1B``, not ``1,000M``); scientific from ``large``."""
    rounded = float(f"{value:.3g}")
    if abs(rounded) >= large:
        return scientific(value) + unit
    scale, suffix = next((s, x) for s, x in scales if abs(rounded) >= s)
    return f"{significant(rounded / scale, 3)}{gap}{suffix}"


_WRITERS: dict[Unit, Callable[[float | None], str]] = {
    Unit.RATIO: percent,
    Unit.SECONDS: seconds_value,
    Unit.BYTES: bytes_value,
    Unit.NUMBER: number,
    Unit.E_VALUE: e_value,
    Unit.P_VALUE: p_value,
}
