"""How the report writes times, durations and numbers, and how it escapes what it did not write.

One place for these, so the header, the charts and the tables agree: times are UTC (an on-call
engineer compares them with Prometheus and logs, not with their own time zone), durations are
short (``4m 30s``), and effects are percentages with a sign. ``esc`` is the only way text taken
from data enters the page: metric names, reasons and messages come from users and policies.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def esc(value: object) -> str:
    """Text for HTML content or a double-quoted attribute."""
    return html.escape(str(value), quote=True)


def utc(moment: float | None, *, seconds: bool = True) -> str:
    """``2026-01-05 10:03:12 UTC``; an em dash when unknown."""
    if moment is None or not math.isfinite(moment):
        return "—"
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(moment, UTC).strftime(shape) + " UTC"


def clock(moment: float, *, with_date: bool = False) -> str:
    """``10:03`` (``01-05 10:03`` when a chart spans days): axis labels."""
    shape = "%m-%d %H:%M" if with_date else "%H:%M"
    return datetime.fromtimestamp(moment, UTC).strftime(shape)


def duration(seconds: float | None) -> str:
    """``1h 4m``, ``4m 30s``, ``12s``."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    total = round(abs(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{amount}{unit}" for amount, unit in parts if amount][:2]
    return ("-" if seconds < 0 else "") + (" ".join(shown) or "0s")


def percent(ratio: float | None, *, signed: bool = False) -> str:
    """``+325%``, ``0.932%``, ``25%``: three significant digits, no trailing zeros."""
    if ratio is None or not math.isfinite(ratio):
        return "—"
    value = ratio * 100
    shape = ".0f" if abs(value) >= 100 else ".3g"
    return f"{value:{'+' if signed else ''}{shape}}%"


def number(value: float | None) -> str:
    """A readable number: ``1,729``, ``0.61``, ``201M``, ``3.2e-05``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    magnitude = abs(value)
    for scale, suffix in _SI:
        if magnitude >= scale * 10:
            return f"{value / scale:.3g}{suffix}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude == 0 or magnitude >= 0.001:
        return f"{value:.3g}"
    return f"{value:.2e}"


def seconds_value(value: float) -> str:
    """A latency: ``85 ms``, ``1.2 s``."""
    if not math.isfinite(value):
        return number(value)
    if abs(value) < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def value_in(unit: str, value: float) -> str:
    """A chart value in its unit: ``ratio`` (a share), ``seconds`` or a plain ``number``."""
    if unit == "ratio":
        return percent(value)
    if unit == "seconds":
        return seconds_value(value)
    return number(value)
