"""Time charts as inline SVG, drawn here: no library, no script, no external file.

A report must open offline, from an alert, in any browser and most mail readers, so every chart
is a plain ``<svg>`` element with its colours as attributes (a mail reader may drop a
stylesheet). A chart has a time axis, lines (NaN breaks a line: a gap is missing data, never a
zero), outcome-coloured points with a tooltip, shaded bands (analysis windows), vertical marks
(traffic changes, the decision) and horizontal rules (a judge's bar). Lines of more than
``MAX_DRAWN`` points are thinned to each bucket's minimum and maximum, so a spike survives and
a rollout of days draws as fast as one of minutes. When nothing is finite the chart says so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analyzer.sources.base import FloatArray
from canarist.report.formatting import Unit, clock, esc, value_in

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 70, 24, 22, 30
MAX_DRAWN = 400
MAX_DECADE_TICKS = 6
COLOURS = {
    "baseline": "#1c7ed6",
    "canary": "#f76707",
    "evidence": "#495057",
    "pass": "#2f9e44",
    "inconclusive": "#f59f00",
    "fail": "#e03131",
    "traffic": "#868e96",
    "decision": "#c92a2a",
    "rule": "#c92a2a",
}
_FONT = 'font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"'
_TIME_STEPS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class Line:
    label: str
    times: FloatArray
    values: FloatArray
    colour: str  # a key of COLOURS
    dashed: bool = False


@dataclass(frozen=True)
class Point:
    at: float
    value: float
    colour: str
    title: str


@dataclass(frozen=True)
class Band:
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Mark:
    at: float
    label: str
    colour: str = "traffic"


@dataclass(frozen=True)
class Rule:
    value: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    start: float
    end: float
    unit: Unit = Unit.NUMBER  # how the y axis reads
    lines: tuple[Line, ...] = ()
    points: tuple[Point, ...] = ()
    bands: tuple[Band, ...] = ()
    marks: tuple[Mark, ...] = ()
    rules: tuple[Rule, ...] = ()
    log: bool = False
    empty: str = "no data"
    height: int = HEIGHT


def thin(times: FloatArray, values: FloatArray, limit: int = MAX_DRAWN) -> tuple[FloatArray, ...]:
    """At most about ``limit`` points: each bucket's min and max in time order; an all-NaN
    bucket keeps one NaN, so a gap stays a gap."""
    if times.size <= limit:
        return times, values
    edges = np.linspace(0, times.size, limit // 2 + 1).astype(int)
    keep: list[int] = []
    for low, high in itertools.pairwise(edges):
        chunk = values[low:high]
        finite = np.isfinite(chunk)
        if not finite.any():
            keep.append(low)
            continue
        masked = np.where(finite, chunk, np.nan)
        keep.extend(sorted({low + int(np.nanargmin(masked)), low + int(np.nanargmax(masked))}))
    index = np.array(keep, dtype=int)
    return times[index], values[index]


def render_chart(chart: Chart) -> str:
    plot = _Plot(chart)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {chart.height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" aria-label="{esc(chart.title)}" {_FONT}>',
        f"<title>{esc(chart.title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot.width:.1f}" height="{plot.height:.1f}" '
        f'fill="#fff" stroke="#dee2e6"/>',
        *(plot.band(band) for band in chart.bands),
        *plot.x_axis(),
    ]
    if plot.has_data:
        parts += plot.y_axis()
        parts += [plot.rule(rule) for rule in chart.rules]
        parts += [plot.line(line) for line in chart.lines]
        parts += [plot.point(point) for point in chart.points]
    else:
        middle = TOP + plot.height / 2
        parts.append(
            f'<text class="no-data" x="{LEFT + plot.width / 2:.1f}" y="{middle:.1f}" '
            f'text-anchor="middle" font-size="14" fill="#868e96">{esc(chart.empty)}</text>'
        )
    parts += [plot.mark(mark, index) for index, mark in enumerate(chart.marks)]
    parts.append("</svg>")
    return "".join(parts)


class _Plot:
    """Scales and drawing for one chart."""

    def __init__(self, chart: Chart) -> None:
        self.chart = chart
        self.width = WIDTH - LEFT - RIGHT
        self.height = chart.height - TOP - BOTTOM
        self.start = chart.start
        self.span = max(chart.end - chart.start, 1.0)
        values = [line.values[np.isfinite(line.values)] for line in chart.lines]
        values.append(np.array([p.value for p in chart.points if math.isfinite(p.value)]))
        finite = np.concatenate(values) if values else np.zeros(0)
        self.has_data = finite.size > 0
        if self.has_data:
            finite = np.concatenate([finite, [rule.value for rule in chart.rules]])
        if chart.log:
            positive = finite[finite > 0]
            low = math.floor(math.log10(positive.min())) if positive.size else -1
            high = math.ceil(math.log10(positive.max())) if positive.size else 1
            # about MAX_DECADE_TICKS labels at most: every k-th power of ten over a wide range
            every = max(1, math.ceil((high - low) / MAX_DECADE_TICKS))
            high = low + every * max(1, math.ceil((high - low) / every))
            self.low, self.high = float(low), float(high)
            self.ticks = [10.0**exponent for exponent in range(low, high + 1, every)]
        else:
            low_value = float(finite.min()) if self.has_data else 0.0
            high_value = float(finite.max()) if self.has_data else 1.0
            if chart.unit is Unit.RATIO or 0 <= low_value < high_value / 2:
                low_value = min(low_value, 0.0)
            self.ticks = _nice_ticks(low_value, high_value)
            self.low, self.high = self.ticks[0], self.ticks[-1]

    def x(self, moment: float) -> float:
        return LEFT + (moment - self.start) / self.span * self.width

    def y(self, value: float) -> float:
        if self.chart.log:
            value = math.log10(value) if value > 0 else self.low
        share = (value - self.low) / (self.high - self.low)
        return TOP + self.height * (1 - min(max(share, -0.05), 1.05))

    def x_axis(self) -> list[str]:
        step = next((s for s in _TIME_STEPS if self.span / s <= 7), 86400 * 7)
        first = math.ceil(self.start / step) * step
        with_date = self.span > 86400
        bottom = TOP + self.height
        parts = []
        for moment in np.arange(first, self.start + self.span + 1e-9, step):
            x = self.x(float(moment))
            parts.append(
                f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#f1f3f5"/>'
                f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" font-size="11" '
                f'fill="#495057">{esc(clock(float(moment), with_date=with_date))}</text>'
            )
        return parts

    def y_axis(self) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = self.y(tick)
            shown = value_in(self.chart.unit, tick)
            parts.append(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + self.width:.1f}" y2="{y:.1f}" '
                f'stroke="#e9ecef"/><text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                f'font-size="11" fill="#495057">{esc(shown)}</text>'
            )
        return parts

    def band(self, band: Band) -> str:
        left = max(self.x(band.start), LEFT)
        right = min(self.x(band.end), LEFT + self.width)
        if right <= left:
            return ""
        return (
            f'<rect class="window" x="{left:.1f}" y="{TOP}" width="{right - left:.1f}" '
            f'height="{self.height:.1f}" fill="#e7f5ff"><title>{esc(band.label)}</title></rect>'
            f'<text x="{left + 3:.1f}" y="{TOP + self.height - 4:.1f}" font-size="10" '
            f'fill="#1971c2">{esc(band.label)}</text>'
        )

    def mark(self, mark: Mark, index: int) -> str:
        x = self.x(mark.at)
        if not LEFT <= x <= LEFT + self.width:
            return ""
        colour = COLOURS[mark.colour]
        label_y = TOP - 6 if index % 2 == 0 else TOP + 10
        # Late marks (a decision, usually) label to their left, where the plot has room.
        left = x > LEFT + self.width * 0.6
        label_x, anchor = (x - 3, "end") if left else (x + 3, "start")
        return (
            f'<g class="mark"><line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" '
            f'y2="{TOP + self.height:.1f}" stroke="{colour}" stroke-dasharray="4 3"/>'
            f'<text x="{label_x:.1f}" y="{label_y}" text-anchor="{anchor}" font-size="10" '
            f'fill="{colour}">{esc(mark.label)}</text></g>'
        )

    def rule(self, rule: Rule) -> str:
        y = self.y(rule.value)
        return (
            f'<g class="rule"><line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + self.width:.1f}" '
            f'y2="{y:.1f}" stroke="{COLOURS["rule"]}" stroke-dasharray="6 4"/>'
            f'<text x="{LEFT + 4}" y="{y - 4:.1f}" font-size="10" '
            f'fill="{COLOURS["rule"]}">{esc(rule.label)}</text></g>'
        )

    def line(self, line: Line) -> str:
        times, values = thin(line.times, line.values)
        colour = COLOURS[line.colour]
        segments: list[list[tuple[float, float]]] = [[]]
        for moment, value in zip(times, values, strict=True):
            if math.isfinite(value) and (value > 0 or not self.chart.log):
                segments[-1].append((self.x(float(moment)), self.y(float(value))))
            elif segments[-1]:
                segments.append([])
        path, dots = [], []
        for segment in segments:
            if len(segment) == 1:
                ((x, y),) = segment
                dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}"/>')
            elif segment:
                path.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in segment))
        dashes = ' stroke-dasharray="5 3"' if line.dashed else ""
        drawn = (
            f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="1.8" '
            f'stroke-linejoin="round"{dashes}/>'
            if path
            else ""
        )
        return (
            f'<g class="series {esc(line.colour)}"><title>{esc(line.label)}</title>'
            f"{drawn}{''.join(dots)}</g>"
        )

    def point(self, point: Point) -> str:
        if not math.isfinite(point.value) or (self.chart.log and point.value <= 0):
            return ""
        colour = COLOURS[point.colour]
        return (
            f'<circle class="look {esc(point.colour)}" cx="{self.x(point.at):.1f}" '
            f'cy="{self.y(point.value):.1f}" r="3.5" fill="{colour}" stroke="#fff">'
            f"<title>{esc(point.title)}</title></circle>"
        )


def _nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if not high > low:
        spread = abs(low) * 0.1 or 1.0
        low, high = low - spread, high + spread
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(f * magnitude for f in (1, 2, 2.5, 5, 10) if f * magnitude >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(index * step, 12) for index in range(first, last + 1)]


def legend(items: Sequence[tuple[str, str]]) -> str:
    """Swatches for ``(colour key, label)`` pairs, as HTML under a chart."""
    swatches = "".join(
        f'<span class="key"><span class="swatch swatch-{esc(colour)}"></span>{esc(label)}</span>'
        for colour, label in items
    )
    return f'<div class="legend">{swatches}</div>'
