"""How the evidence grew look by look: each metric's statistic against its bar, and every look.

The statistic of a look is what its judge reported (the e-value, the p-value, or the value a
threshold judge held to its bound) and the bar is that judgement's own ``threshold``; the report
never recomputes either. The rule drawn across a metric's chart is the bar of the ruling on
its card (the decisive look), so the card and the chart show one bar; when earlier looks were
held to other bars (an early FAIL's stricter bar, the trend judge's bar that tightens look by
look) those are drawn too, dashed, each at its look. The score in the table is each verdict's
own ``score``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analyzer.verdict import Judgement, MetricVerdict, Outcome
from canarist.report.formatting import Unit, esc, number, utc, value_in
from canarist.report.history import Look
from canarist.report.svg import Band, Chart, Line, Mark, Point, Rule, legend, render_chart

MAX_LOOK_ROWS = 200
MAX_MARKED_LOOKS = 120
_RULE_WORDS = {"e-value": "FAIL at", "p-value": "significant below"}


@dataclass(frozen=True)
class ChartContext:
    """What every chart of one report shares: the time range, windows and marks."""

    start: float
    end: float
    bands: tuple[Band, ...]
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class Statistic:
    """A judgement's statistic and its bar, as the judge reported them."""

    label: str  # e-value | p-value | value
    value: float
    bar: float | None
    unit: Unit

    @staticmethod
    def of(judgement: Judgement, unit: Unit = Unit.NUMBER) -> Statistic | None:
        """``unit``: how a threshold judge's value reads (the metric's unit)."""
        if judgement.e_value is not None:
            return Statistic("e-value", judgement.e_value, judgement.threshold, Unit.E_VALUE)
        if judgement.p_value is not None:
            return Statistic("p-value", judgement.p_value, judgement.threshold, Unit.P_VALUE)
        value = judgement.details.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Statistic("value", float(value), judgement.threshold, unit)
        return None

    @property
    def text(self) -> str:
        return f"{self.label} {value_in(self.unit, self.value)}"

    @property
    def bar_text(self) -> str:
        return value_in(self.unit, self.bar)

    @property
    def log(self) -> bool:
        return self.unit in (Unit.E_VALUE, Unit.P_VALUE)


def metric_of(look: Look, name: str) -> MetricVerdict | None:
    return next((metric for metric in look.verdict.metrics if metric.name == name), None)


def evidence_chart(
    name: str,
    looks: Sequence[Look],
    context: ChartContext,
    ruling: Judgement | None,
    unit: Unit = Unit.NUMBER,
) -> str:
    """``ruling``: the judgement on the metric's card, whose bar the rule shows."""
    points, bars, found = [], [], None
    for look in looks:
        verdict = metric_of(look, name)
        statistic = Statistic.of(verdict.judgement, unit) if verdict else None
        if verdict is None or statistic is None:
            continue
        found = statistic
        outcome = verdict.outcome.value
        title = f"{utc(look.at)}: {outcome.upper()}, {statistic.text}"
        if statistic.bar is not None:
            title += f" (bar {statistic.bar_text})"
        title += f": {verdict.judgement.reason}"
        points.append(Point(look.at, statistic.value, outcome, title))
        bars.append(statistic.bar if statistic.bar is not None else math.nan)
    ruled = Statistic.of(ruling, unit) if ruling is not None else None
    shown = ruled or found
    label = shown.label if shown else "evidence"
    log = shown.log if shown else False
    kept = [
        (point, bar)
        for point, bar in zip(points, bars, strict=True)
        if not log or (point.value > 0 and math.isfinite(point.value))
    ]
    points = [point for point, _ in kept]
    times = np.array([p.at for p in points], dtype=np.float64)
    values = np.array([p.value for p in points], dtype=np.float64)
    bar = ruled.bar if ruled is not None else None
    rules: tuple[Rule, ...] = ()
    if ruled is not None and bar is not None:
        rules = (Rule(bar, f"{_RULE_WORDS.get(label, 'bound')} {ruled.bar_text}"),)
    lines = [Line(label, times, values, "evidence")] if points else []
    per_look = np.array([bar_at for _, bar_at in kept], dtype=np.float64)
    other_bars = np.isfinite(per_look) & (per_look != (bar if bar is not None else math.nan))
    if other_bars.any():
        lines.append(Line("the bar at each look", times, per_look, "rule", dashed=True))
    chart = Chart(
        title=f"{name}: {label} per look",
        start=context.start,
        end=context.end,
        unit=shown.unit if shown else Unit.NUMBER,
        lines=tuple(lines),
        points=tuple(_fewer(points)),
        bands=context.bands,
        marks=context.marks,
        rules=rules,
        log=log,
        empty="no statistic yet: no look has measured this metric",
        height=170,
    )
    keys = legend([("rule", "the bar at each look")]) if other_bars.any() else ""
    return (
        f'<figure class="chart evidence"><figcaption>{esc(name)}: {esc(label)} per look'
        f"</figcaption>{render_chart(chart)}{keys}</figure>"
    )


def _fewer(points: Sequence[Point]) -> list[Point]:
    """At most about ``MAX_MARKED_LOOKS`` markers: every FAIL, every change of outcome, the
    last, and evenly spaced others (the line still passes through every look)."""
    if len(points) <= MAX_MARKED_LOOKS:
        return list(points)
    every = math.ceil(len(points) / MAX_MARKED_LOOKS)
    return [
        point
        for index, point in enumerate(points)
        if index % every == 0
        or index == len(points) - 1
        or point.colour == Outcome.FAIL.value
        or point.colour != points[index - 1].colour
    ]


def looks_table(
    looks: Sequence[Look], names: Sequence[str], units: dict[str, Unit] | None = None
) -> str:
    units = units or {}
    shown = list(looks)[-MAX_LOOK_ROWS:]
    omitted = len(looks) - len(shown)
    header = "".join(f"<th>{esc(name)}</th>" for name in names)
    rows = []
    for look in shown:
        cells = []
        for name in names:
            verdict = metric_of(look, name)
            if verdict is None:
                cells.append("<td>—</td>")
                continue
            statistic = Statistic.of(verdict.judgement, units.get(name, Unit.NUMBER))
            text = verdict.outcome.value.upper()
            if statistic is not None:
                text += f" {statistic.text}"
            cells.append(f'<td class="{esc(verdict.outcome.value)}">{esc(text)}</td>')
        kind = "decided" if look.decisive else "final" if look.final else ""
        stage = f"{look.stage + 1}" if look.stage is not None else "—"
        rows.append(
            f'<tr class="{"decisive" if look.decisive else ""}"><td>{esc(utc(look.at))}</td>'
            f"<td>{esc(stage)}</td><td>{badge(look.outcome)} {esc(kind)}</td>"
            f'<td class="score">{esc(number(look.verdict.score))}</td>{"".join(cells)}</tr>'
        )
    note = (
        f'<p class="caption">{omitted} earlier look(s) are not listed; the charts show all.</p>'
        if omitted
        else ""
    )
    opened = " open" if len(looks) <= 30 else ""
    return (
        f"<details{opened}><summary>Every look ({len(looks)})</summary>{note}"
        f'<table class="looks"><thead><tr><th>Look (window end)</th><th>Stage</th>'
        f"<th>Outcome</th><th>Score</th>{header}</tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></details>"
    )


def badge(outcome: Outcome | str) -> str:
    value = outcome.value if isinstance(outcome, Outcome) else str(outcome)
    return f'<span class="badge {esc(value)}">{esc(value.upper())}</span>'
