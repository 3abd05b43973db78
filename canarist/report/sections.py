"""The report's middle: per metric, what both versions did and how the judge ruled; then how
the evidence grew look by look.

A metric's card answers "why" first: its outcome, the judge's sentence, the effect with its
interval against the tolerance, the statistic against its bar, and both versions' numbers; then
the chart of both versions over the rollout, with the analysis windows shaded and every traffic
change and the decision marked. The evidence charts show each look's statistic (e-value,
p-value or the thresholded value) against the bar, coloured by the metric's outcome at that look,
and the table lists every look (the latest ``MAX_LOOK_ROWS``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from analyzer.policy import Policy
from analyzer.policy.durations import format_duration
from analyzer.verdict import Judgement, MetricVerdict, Outcome
from canarist.report.formatting import Unit, esc, number, percent, utc, value_in
from canarist.report.history import Look
from canarist.report.series import MetricSeries
from canarist.report.svg import Band, Chart, Line, Mark, Point, Rule, legend, render_chart

MAX_LOOK_ROWS = 200
MAX_MARKED_LOOKS = 120
_SUMMARY_KEYS = {
    "counts": ("error_ratio", "errors", "requests", "intervals"),
    "histogram": ("mean", "p50", "p90", "p99", "observations", "intervals"),
    "series": ("mean", "median", "last", "value", "count", "intervals"),
    "threshold": ("value", "count"),
}
_COUNT_KEYS = frozenset({"errors", "requests", "observations", "intervals", "count"})


def slug(name: str) -> str:
    return "metric-" + re.sub(r"[^a-z0-9_-]+", "-", name.lower())


def badge(outcome: Outcome | str) -> str:
    value = outcome.value if isinstance(outcome, Outcome) else str(outcome)
    return f'<span class="badge {esc(value)}">{esc(value.upper())}</span>'


def metric_card(
    name: str,
    verdict: MetricVerdict | None,
    series: MetricSeries | None,
    policy: Policy | None,
    context: ChartContext,
    baseline_shift: float = 0.0,
) -> str:
    metric = next((m for m in policy.metrics if m.name == name), None) if policy else None
    flags = []
    if (metric and metric.critical) or (verdict and verdict.critical):
        flags.append('<span class="flag">critical</span>')
    if (metric and metric.dry_run) or (verdict and verdict.dry_run):
        flags.append('<span class="flag">dry run: reported, never counted</span>')
    head = f"<h3>{esc(name)} {badge(verdict.outcome) if verdict else ''} {' '.join(flags)}</h3>"
    if verdict is None:
        body = '<p class="reason">Not analysed yet: no look has judged this metric.</p>'
    else:
        body = f'<p class="reason">{esc(verdict.judgement.reason)}</p>'
        if baseline_shift:
            body += (
                '<p class="reason">The baseline is the old version as it was '
                f"{esc(_duration(baseline_shift))} earlier: after the switch it served nobody, "
                "so the new version is compared with it just before the switch.</p>"
            )
        unit = series.unit if series is not None else Unit.NUMBER
        body += _numbers(verdict, metric.tolerance if metric else None, _direction(metric), unit)
    return (
        f'<article class="metric" id="{esc(slug(name))}">{head}{body}'
        f"{_data_chart(name, series, context)}</article>"
    )


def _duration(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


def _direction(metric: object) -> str:
    direction = getattr(metric, "direction", None)
    return {"increase_is_bad": "increase", "decrease_is_bad": "decrease"}.get(
        str(direction), "change"
    )


def _numbers(verdict: MetricVerdict, tolerance: float | None, direction: str, unit: Unit) -> str:
    judgement = verdict.judgement
    rows = []
    if judgement.effect is not None:
        effect = percent(judgement.effect, signed=True)
        interval = judgement.effect_interval
        if interval is not None:
            low, high = interval
            effect += f" (interval {percent(low, signed=True)} … {percent(high, signed=True)})"
        rows.append(("Effect (canary vs baseline)", effect))
    if tolerance is not None:
        rows.append(("Tolerance", f"{percent(tolerance)} {direction} allowed"))
    statistic = _statistic(judgement, unit)
    if statistic is not None:
        label, value, bar, shown_in = statistic
        bar_text = f", bar {value_in(shown_in, bar)}" if bar is not None else ""
        rows.append(("Evidence", f"{label} {value_in(shown_in, value)}{bar_text}"))
    rows.append(("Judge", f"{verdict.judge}, weight {number(verdict.weight)}"))
    for version, values in (("Baseline", judgement.baseline), ("Canary", judgement.canary)):
        summary = _summary(verdict.kind, values, unit)
        if summary:
            rows.append((version, summary))
    cells = "".join(f"<dt>{esc(term)}</dt><dd>{esc(value)}</dd>" for term, value in rows)
    return f'<dl class="numbers">{cells}</dl>'


def _summary(kind: str, values: Mapping[str, float], unit: Unit) -> str:
    keys = [key for key in _SUMMARY_KEYS.get(kind, ()) if key in values] or list(values)[:5]
    shown = []
    for key in keys:
        value = values[key]
        if key == "error_ratio":
            text = percent(value)
        elif key in _COUNT_KEYS:
            text = number(value)
        else:
            text = value_in(unit, value)
        shown.append(f"{key.replace('_', ' ')} {text}")
    return ", ".join(shown)


@dataclass(frozen=True)
class ChartContext:
    """What every chart of one report shares: the time range, windows and marks."""

    start: float
    end: float
    bands: tuple[Band, ...]
    marks: tuple[Mark, ...]


def _data_chart(name: str, series: MetricSeries | None, context: ChartContext) -> str:
    if series is None:
        return '<p class="no-data">No chart: no data was fetched for this metric (see above).</p>'
    chart = Chart(
        title=f"{name}: baseline and canary, {series.what}",
        start=context.start,
        end=context.end,
        unit=series.unit,
        lines=(
            Line("baseline", series.times, series.baseline, "baseline"),
            Line("canary", series.times, series.canary, "canary"),
        ),
        bands=context.bands,
        marks=context.marks,
        empty=f"no data: {series.problem}" if series.problem else "no data",
    )
    caption = f'<p class="caption">{esc(series.what.capitalize())}.'
    if series.problem and series.has_data:
        caption += f" Part of the data is missing: {esc(series.problem)}"
    caption += "</p>"
    keys = legend([("baseline", "baseline"), ("canary", "canary")])
    return f'<figure class="chart">{render_chart(chart)}{keys}{caption}</figure>'


def _statistic(
    judgement: Judgement, unit: Unit = Unit.NUMBER
) -> tuple[str, float, float | None, Unit] | None:
    """The statistic, its bar and how both read (``unit``: a threshold judge's value's)."""
    if judgement.e_value is not None:
        return "e-value", judgement.e_value, judgement.threshold, Unit.E_VALUE
    if judgement.p_value is not None:
        return "p-value", judgement.p_value, judgement.threshold, Unit.P_VALUE
    value = judgement.details.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "value", float(value), judgement.threshold, unit
    return None


def evidence_chart(name: str, looks: Sequence[Look], context: ChartContext) -> str:
    points, label, bar, unit = [], None, None, Unit.NUMBER
    for look in looks:
        verdict = _metric(look, name)
        statistic = _statistic(verdict.judgement) if verdict else None
        if verdict is None or statistic is None:
            continue
        label, value, unit = statistic[0], statistic[1], statistic[3]
        bar = statistic[2] if statistic[2] else bar
        title = (
            f"{utc(look.at)}: {verdict.outcome.value.upper()}, {label} "
            f"{value_in(unit, value)}: {verdict.judgement.reason}"
        )
        points.append(Point(look.at, value, verdict.outcome.value, title))
    log = label in ("e-value", "p-value")
    if log:
        points = [p for p in points if p.value > 0 and math.isfinite(p.value)]
    marked = _fewer(points)
    rule_word = {"e-value": "FAIL at", "p-value": "significant below"}.get(label or "", "bound")
    rules = (Rule(bar, f"{rule_word} {value_in(unit, bar)}"),) if bar else ()
    times = np.array([p.at for p in points], dtype=np.float64)
    values = np.array([p.value for p in points], dtype=np.float64)
    chart = Chart(
        title=f"{name}: {label or 'evidence'} per look",
        start=context.start,
        end=context.end,
        unit=unit,
        lines=(Line(label or "evidence", times, values, "evidence"),) if points else (),
        points=tuple(marked),
        bands=context.bands,
        marks=context.marks,
        rules=rules,
        log=log,
        empty="no statistic yet: no look has measured this metric",
        height=170,
    )
    return (
        f'<figure class="chart evidence"><figcaption>{esc(name)}: {esc(label or "evidence")} '
        f"per look</figcaption>{render_chart(chart)}</figure>"
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


def looks_table(looks: Sequence[Look], names: Sequence[str]) -> str:
    shown = list(looks)[-MAX_LOOK_ROWS:]
    omitted = len(looks) - len(shown)
    header = "".join(f"<th>{esc(name)}</th>" for name in names)
    rows = []
    for look in shown:
        cells = []
        for name in names:
            verdict = _metric(look, name)
            if verdict is None:
                cells.append("<td>—</td>")
                continue
            statistic = _statistic(verdict.judgement)
            text = verdict.outcome.value.upper()
            if statistic is not None:
                text += f" {statistic[0]} {value_in(statistic[3], statistic[1])}"
            cells.append(f'<td class="{esc(verdict.outcome.value)}">{esc(text)}</td>')
        kind = "decided" if look.decisive else "final" if look.final else ""
        stage = f"{look.stage + 1}" if look.stage is not None else "—"
        rows.append(
            f'<tr class="{"decisive" if look.decisive else ""}"><td>{esc(utc(look.at))}</td>'
            f"<td>{esc(stage)}</td><td>{badge(look.outcome)} {esc(kind)}</td>{''.join(cells)}</tr>"
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
        f"<th>Outcome</th>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def _metric(look: Look, name: str) -> MetricVerdict | None:
    return next((metric for metric in look.verdict.metrics if metric.name == name), None)
