"""One analysis pass: render the policy's queries, fetch both versions, judge, score.

Fetching and judging are split on purpose. ``fetch`` reads a whole window once per query and
version, every query of a look in one request where the source can (``query_many``);
``judge_upto`` judges the data as it stood at any grid instant, so a backtest replays every look
of a 40-minute window from one fetch — and cannot look ahead, because the value at a grid
instant ``t`` (``increase(x[interval])`` evaluated at ``t``) only depends on samples up to t.

Errors are data: a query that fails becomes an INCONCLUSIVE metric with reason ``query_error``
(``details.temporary`` tells a Prometheus outage from a broken query), never an exception that
ends the analysis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

import numpy as np

from analyzer.errors import QueryError, SourceError, TemplateError, TemporarySourceError
from analyzer.judges.base import CountsData, HistogramData, JudgeContext, JudgeData, SeriesData
from analyzer.judges.pods import explained, one_pod_explains
from analyzer.judges.registry import judge_for
from analyzer.policy.metrics import AnyMetric, CountsMetric, HistogramMetric
from analyzer.policy.models import Policy
from analyzer.policy.promql import PromQLTemplate, Selector
from analyzer.scoring import allocate_alpha, score
from analyzer.sources.base import FloatArray, MetricSource, QueryResult, Series, ask_many
from analyzer.sources.convert import (
    by_label,
    counts_data,
    histogram_data,
    series_data,
    step_grid,
)
from analyzer.verdict import Judgement, MetricVerdict, Outcome, Reason, Verdict

FIXED_HORIZON_JUDGES = frozenset({"mann_whitney"})
"""Judges whose error rate holds for one look only: they speak at the final look of a step."""


@dataclass(frozen=True)
class Versions:
    """Who is compared with whom, and the job's values for the policy's declared args.

    ``baseline_shift`` compares the canary with the baseline as it was that long before: the
    baseline is queried over the window moved back by it and laid on the canary's grid. Blue-
    green after the switch needs it: the old version then serves nobody, so the only fair
    baseline is the old version before the switch, under the same full traffic (Kayenta's
    separate control and experiment scopes do the same).
    """

    baseline: Selector
    canary: Selector
    args: Mapping[str, str]
    baseline_shift: timedelta = timedelta(0)


@dataclass(frozen=True)
class MetricWindow:
    """One metric's data for both versions over a window, or the error that prevented it;
    ``canary_pods`` is the canary's data per pod when the queries kept the pod label."""

    metric: AnyMetric
    baseline: JudgeData | None = None
    canary: JudgeData | None = None
    error: str | None = None
    temporary: bool = True
    canary_pods: Mapping[str, JudgeData] = field(default_factory=dict)


@dataclass(frozen=True)
class FetchedWindow:
    grid: FloatArray  # the look instants, Unix seconds
    metrics: tuple[MetricWindow, ...]


def resolve_args(policy: Policy, given: Mapping[str, str] | None) -> dict[str, str]:
    """The job's args checked against the policy's declarations, defaults filled in."""
    given = dict(given or {})
    declared = {arg.name: arg for arg in policy.args}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(
            f"policy {policy.name!r} declares no arg {', '.join(unknown)}; "
            f"declared: {', '.join(sorted(declared)) or 'none'}"
        )
    resolved = {}
    for name, arg in declared.items():
        value = given.get(name, arg.default)
        if value is None:
            raise TemplateError(f"policy {policy.name!r} needs a value for arg {name!r}")
        resolved[name] = value
    return resolved


_CHECK_SELECTOR = Selector.from_labels({"check": "submit"})


def check_args(policy: Policy, given: Mapping[str, str] | None) -> dict[str, str]:
    """``resolve_args``, then every query of the policy rendered with the result.

    A value the templating refuses (text outside quotes, a control character) would otherwise
    be accepted at submit and fail every look of the rollout. Rendering does not depend on the
    selector (it is re-escaped on its own), so any selector shows what a look would render.
    TemplateError names the metric, the query field and the arg.
    """
    args = resolve_args(policy, given)
    interval = policy.analysis.interval
    for metric in policy.metrics:
        for where, text in metric.templates().items():
            try:
                template = PromQLTemplate.parse(text)
                template.render(selector=_CHECK_SELECTOR, interval=interval, args=args)
            except TemplateError as exc:
                raise TemplateError(f"metric {metric.name!r} ({where}): {exc}") from exc
    return args


def make_grid(start: datetime, end: datetime, interval: timedelta) -> FloatArray:
    """Look instants: one interval after ``start``, then every interval up to ``end``.

    The same millisecond grid the source asks Prometheus for (``step_grid``), so every grid
    instant matches a returned sample exactly.
    """
    if end < start + interval:
        return np.zeros(0)
    return step_grid(start + interval, end, interval)


def fetch(
    policy: Policy, source: MetricSource, versions: Versions, start: datetime, end: datetime
) -> FetchedWindow:
    """Query every metric for both versions over [start, end] at the analysis interval.

    Every query of every metric is rendered first; those sharing one range (both versions,
    unless the baseline is shifted) go to the source in one ``query_many`` call, each distinct
    query once. A metric one of whose queries failed is an error window, as if it had been asked
    alone (the first failure in the order baseline then canary, query by query, is its error);
    the other metrics keep their data.
    """
    interval = policy.analysis.interval
    args = resolve_args(policy, versions.args)
    grid = make_grid(start, end, interval)
    if grid.size == 0:
        return FetchedWindow(grid, tuple(MetricWindow(metric) for metric in policy.metrics))
    sides = {
        "baseline": (versions.baseline, versions.baseline_shift),
        "canary": (versions.canary, timedelta(0)),
    }
    rendered = {
        (side, text): PromQLTemplate.parse(text).render(
            selector=selector, interval=interval, args=args
        )
        for side, (selector, _) in sides.items()
        for metric in policy.metrics
        for text in metric.templates().values()
    }
    asked: dict[timedelta, dict[str, QueryResult]] = {}
    for side, (_, shift) in sides.items():
        wanted = asked.setdefault(shift, {})
        for (where, _), promql in rendered.items():
            if where == side:
                wanted.setdefault(promql, [])
    for shift, wanted in asked.items():
        queries = list(wanted)
        found = ask_many(source, queries, start + interval - shift, end - shift, interval)
        wanted.update(zip(queries, found, strict=True))

    def query(text: str, side: str) -> list[Series]:
        shift = sides[side][1]
        found = asked[shift][rendered[side, text]]
        if isinstance(found, SourceError):
            raise found
        return [_shifted(series, shift) for series in found] if shift else found

    pod = policy.analysis.pod_label
    windows = []
    for metric in policy.metrics:
        try:
            baseline, _ = _metric_data(metric, partial(query, side="baseline"), grid, None)
            canary, pods = _metric_data(metric, partial(query, side="canary"), grid, pod)
            windows.append(MetricWindow(metric, baseline, canary, canary_pods=pods))
        except TemporarySourceError as error:
            windows.append(MetricWindow(metric, error=str(error), temporary=True))
        except QueryError as error:
            windows.append(MetricWindow(metric, error=str(error), temporary=False))
    return FetchedWindow(grid, tuple(windows))


def _shifted(series: Series, shift: timedelta) -> Series:
    """``series`` moved forward in time by ``shift`` (onto the canary's grid)."""
    return Series(series.labels, series.timestamps + shift.total_seconds(), series.values)


def _metric_data(
    metric: AnyMetric, query: Callable[[str], list[Series]], grid: FloatArray, pod: str | None
) -> tuple[JudgeData, Mapping[str, JudgeData]]:
    """The version's data, and its data per pod when the queries kept the ``pod`` label (two
    pods or more; every query of the metric must keep it, or there is no per-pod view). Only
    the canary's pods are looked at (``pod`` None: the baseline's are not split). The per-pod
    view is built when first read: only a FAIL reads it, so most looks never pay for it."""
    if isinstance(metric, CountsMetric):
        whole: JudgeData = counts_data(query(metric.errors), query(metric.total), grid)
    elif isinstance(metric, HistogramMetric):
        buckets = query(metric.buckets)  # first: its error is the metric's
        sums = query(metric.sum) if metric.sum else None
        counts = query(metric.count) if metric.count else None
        whole = histogram_data(buckets, grid, sums, counts)
    else:
        (template,) = metric.templates().values()
        whole = series_data(query(template), grid)
    if pod is None:
        return whole, {}
    return whole, _PerPod(partial(_pod_data, metric, query, grid, pod))


class _PerPod(Mapping[str, JudgeData]):
    """A per-pod view computed on first use (and then kept: a backtest reads it per look)."""

    def __init__(self, build: Callable[[], dict[str, JudgeData]]) -> None:
        self._build: Callable[[], dict[str, JudgeData]] | None = build
        self._pods: dict[str, JudgeData] = {}

    def _built(self) -> dict[str, JudgeData]:
        if self._build is not None:
            self._pods, self._build = self._build(), None
        return self._pods

    def __getitem__(self, name: str) -> JudgeData:
        return self._built()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def _pod_data(
    metric: AnyMetric, query: Callable[[str], list[Series]], grid: FloatArray, pod: str
) -> dict[str, JudgeData]:
    if isinstance(metric, CountsMetric):
        errors_by = by_label(query(metric.errors), pod)
        pods: dict[str, JudgeData] = {
            name: counts_data(errors_by.get(name, []), part, grid)
            for name, part in by_label(query(metric.total), pod).items()
        }
    elif isinstance(metric, HistogramMetric):
        sums = query(metric.sum) if metric.sum else None
        counts = query(metric.count) if metric.count else None
        sums_by = by_label(sums, pod) if sums is not None else {}
        counts_by = by_label(counts, pod) if counts is not None else {}
        pods = {
            name: histogram_data(
                part,
                grid,
                sums_by.get(name) if sums is not None else None,
                counts_by.get(name) if counts is not None else None,
            )
            for name, part in by_label(query(metric.buckets), pod).items()
        }
    else:
        (template,) = metric.templates().values()
        pods = {
            name: series_data(part, grid) for name, part in by_label(query(template), pod).items()
        }
    return pods if len(pods) >= 2 else {}


def judge_upto(
    policy: Policy, window: FetchedWindow, looks: int | None = None, *, final: bool = False
) -> Verdict:
    """Judge the data as it stood after the first ``looks`` grid instants (all by default)."""
    looks = window.grid.size if looks is None else looks
    alphas = allocate_alpha(policy)
    context_of = {
        metric.name: JudgeContext(alphas[metric.name], policy.analysis.min_samples)
        for metric in policy.metrics
    }
    decide = policy.analysis.one_pod_explains
    verdicts = [
        _judge_metric(metric_window, context_of[metric_window.metric.name], looks, final, decide)
        for metric_window in window.metrics
    ]
    verdict = score(policy, verdicts, final=final)
    if looks:
        verdict = verdict.model_copy(
            update={
                "window_start": float(window.grid[0] - policy.analysis.interval.total_seconds()),
                "window_end": float(window.grid[looks - 1]),
            }
        )
    return verdict


def _judge_metric(
    window: MetricWindow, context: JudgeContext, looks: int, final: bool, one_pod: str
) -> MetricVerdict:
    metric = window.metric
    judge_type = metric.judge.type
    if window.error is not None:
        judgement = query_error(
            f"query failed: {window.error}", window.error, temporary=window.temporary
        )
    elif window.baseline is None or window.canary is None or looks == 0:
        judgement = Judgement(
            outcome=Outcome.INCONCLUSIVE,
            reason="the window is shorter than one analysis interval: nothing measured yet",
            reason_code=Reason.NO_DATA,
        )
    elif judge_type in FIXED_HORIZON_JUDGES and not final:
        judgement = Judgement(
            outcome=Outcome.INCONCLUSIVE,
            reason=f"{judge_type} is a fixed-horizon test: it decides at the end of the step",
            reason_code=Reason.TOO_FEW_SAMPLES,
            details={"waiting_for_final_look": True},
        )
    else:
        judge = judge_for(judge_type)
        baseline, canary = _head(window.baseline, looks), _head(window.canary, looks)
        judgement = judge.judge(baseline, canary, metric, context)
        if judgement.outcome is Outcome.FAIL and window.canary_pods:
            pods = {name: _head(data, looks) for name, data in window.canary_pods.items()}
            found = one_pod_explains(judge, baseline, pods, metric, context)
            if found is not None:
                judgement = explained(judgement, found, one_pod)
    return _metric_verdict(metric, judgement)


def _metric_verdict(metric: AnyMetric, judgement: Judgement) -> MetricVerdict:
    return MetricVerdict(
        name=metric.name,
        kind=metric.kind,
        judge=metric.judge.type,
        group=metric.group,
        critical=metric.critical,
        dry_run=metric.dry_run,
        weight=metric.weight or 0.0,
        judgement=judgement,
    )


def query_error(reason: str, error: str, *, temporary: bool) -> Judgement:
    """A metric whose data could not be had: INCONCLUSIVE with reason code ``query_error``,
    which counts toward ``consecutive_error_limit``. ``temporary`` tells an outage (retrying
    may help) from a query or policy that will not work as it stands."""
    return Judgement(
        outcome=Outcome.INCONCLUSIVE,
        reason=reason,
        reason_code=Reason.QUERY_ERROR,
        details={"temporary": temporary, "error": error},
    )


def not_analyzed(policy: Policy, error: str, *, final: bool) -> Verdict:
    """A look that could not run at all (the job's args no longer fit a changed policy, say):
    every metric a ``query_error`` that no retry fixes, so the look counts as one."""
    judgement = query_error(f"analysis could not run: {error}", error, temporary=False)
    verdicts = [_metric_verdict(metric, judgement) for metric in policy.metrics]
    return score(policy, verdicts, final=final)


def _head(data: JudgeData, looks: int) -> JudgeData:
    """The data known after ``looks`` grid instants: nothing later is visible."""
    if isinstance(data, CountsData):
        return replace(
            data,
            timestamps=data.timestamps[:looks],
            errors=data.errors[:looks],
            totals=data.totals[:looks],
        )
    if isinstance(data, HistogramData):
        return replace(
            data,
            timestamps=data.timestamps[:looks],
            counts=data.counts[:looks],
            sums=None if data.sums is None else data.sums[:looks],
            observations=None if data.observations is None else data.observations[:looks],
        )
    assert isinstance(data, SeriesData)
    return replace(data, timestamps=data.timestamps[:looks], values=data.values[:looks])


def analyze(
    policy: Policy,
    source: MetricSource,
    versions: Versions,
    start: datetime,
    end: datetime,
    *,
    final: bool = True,
) -> Verdict:
    """One analysis of [start, end] (Kayenta's standalone canary analysis): fetch, then judge."""
    verdict = judge_upto(policy, fetch(policy, source, versions, start, end), final=final)
    shift = versions.baseline_shift.total_seconds()
    return verdict.model_copy(update={"baseline_shift": shift}) if shift else verdict
