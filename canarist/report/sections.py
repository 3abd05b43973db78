"""A metric's card: what both versions did and how the judge ruled, side by side.

A card answers "why" first: its outcome, the judge's sentence, the effect with its interval
against the tolerance, the statistic against its bar (the judgement's own ``threshold``), and
both versions' numbers; then the chart of both versions over the rollout, with the analysis
windows shaded and every traffic change and the decision marked. The chart plots what the
ruling is about (measures.py): the mean latency when the judge tested the mean, the quantile
a tail ruling cites, and for a trend ruling the values with the growth per hour it judged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from analyzer.policy.durations import format_duration
from analyzer.policy.metrics import AnyMetric
from analyzer.verdict import Judgement, MetricVerdict
from canarist.report.evidence import ChartContext, Statistic, badge
from canarist.report.formatting import Unit, esc, number, percent, value_in
from canarist.report.measures import Measure, Quantity
from canarist.report.series import MetricSeries
from canarist.report.svg import Chart, Line, legend, render_chart

_SUMMARY_KEYS = {
    "counts": ("error_ratio", "errors", "requests", "intervals"),
    "histogram": ("mean", "p50", "p90", "p99", "observations", "intervals"),
    "series": ("mean", "median", "last", "value", "count", "intervals"),
    "threshold": ("value", "count"),
}
_COUNT_KEYS = frozenset({"errors", "requests", "observations", "intervals", "count"})


def slug(name: str) -> str:
    return "metric-" + re.sub(r"[^a-z0-9_-]+", "-", name.lower())


def metric_card(
    name: str,
    verdict: MetricVerdict | None,
    series: MetricSeries | None,
    metric: AnyMetric | None,
    measure: Measure | None,
    context: ChartContext,
    baseline_shift: float = 0.0,
) -> str:
    """The card of metric ``name``: ``metric`` is its policy entry (None without the policy),
    ``measure`` what its chart plots (``measure_for`` the ruling in ``verdict``)."""
    ruling = verdict.judgement if verdict else None
    unit = measure.unit if measure is not None else Unit.NUMBER
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
        body += _numbers(verdict, metric, unit)
    chart = (
        _data_chart(name, series, measure, ruling, context)
        if series is not None and measure is not None
        else '<p class="no-data">No chart: no data was fetched for this metric (see above).</p>'
    )
    return f'<article class="metric" id="{esc(slug(name))}">{head}{body}{chart}</article>'


def _duration(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


def _direction(metric: AnyMetric | None) -> str:
    direction = getattr(metric, "direction", None)
    return {"increase_is_bad": "increase", "decrease_is_bad": "decrease"}.get(
        str(direction), "change"
    )


def _numbers(verdict: MetricVerdict, metric: AnyMetric | None, unit: Unit) -> str:
    judgement = verdict.judgement
    rows = []
    if judgement.effect is not None:
        effect = percent(judgement.effect, signed=True)
        interval = judgement.effect_interval
        if interval is not None:
            low, high = interval
            effect += f" (interval {percent(low, signed=True)} … {percent(high, signed=True)})"
        rows.append(("Effect (canary vs baseline)", effect))
    if metric is not None:
        rows.append(("Tolerance", f"{percent(metric.tolerance)} {_direction(metric)} allowed"))
    statistic = Statistic.of(judgement, unit)
    if statistic is not None:
        bar = f", bar {statistic.bar_text}" if statistic.bar is not None else ""
        rows.append(("Evidence", statistic.text + bar))
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


def _data_chart(
    name: str,
    series: MetricSeries,
    measure: Measure,
    ruling: Judgement | None,
    context: ChartContext,
) -> str:
    what = f"{measure.label} per {format_duration(series.step)}"
    baseline, canary = series.plotted(measure)
    chart = Chart(
        title=f"{name}: baseline and canary, {what}",
        start=context.start,
        end=context.end,
        unit=measure.unit,
        lines=(
            Line(f"baseline {measure.label}", series.times, baseline, "baseline"),
            Line(f"canary {measure.label}", series.times, canary, "canary"),
        ),
        bands=context.bands,
        marks=context.marks,
        empty=f"no data: {series.problem}" if series.problem else "no data",
    )
    caption = f'<p class="caption">{esc(_caption(what, measure, ruling))}</p>'
    keys = legend([("baseline", "baseline"), ("canary", "canary")])
    return f'<figure class="chart">{render_chart(chart)}{keys}{caption}</figure>'


def _caption(what: str, measure: Measure, ruling: Judgement | None) -> str:
    # "p99 latency" stays lower case, as the judges write it
    text = what if measure.quantity is Quantity.QUANTILE else what[0].upper() + what[1:]
    if measure.quantity is Quantity.QUANTILE:
        text += " from the histogram's buckets"
    if measure.quantity in (Quantity.MEAN, Quantity.QUANTILE):
        text += (
            ": what the ruling cites."
            if measure.cited
            else ": no ruling cites a latency yet, so this is shown."
        )
        return text
    details = ruling.details if ruling is not None else {}
    growth, allowed = details.get("growth_per_hour"), details.get("allowed_growth_per_hour")
    if isinstance(growth, float) and isinstance(allowed, float):
        level, gate = details.get("level"), details.get("level_gate")
        text += (
            f". The trend judge rules on growth per hour against the baseline: the canary grows "
            f"{percent(growth, signed=True)}/h against it (allowed {percent(allowed, signed=True)}"
            "/h)"
        )
        if isinstance(level, float) and isinstance(gate, float):
            text += f" and stands {percent(level, signed=True)} vs it (gate {percent(gate)})"
        return text + "."
    return text + "."
