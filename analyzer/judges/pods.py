"""One slow pod is not the version: a FAIL that one canary pod explains on its own.

A canary runs on a few pods. When one of them lands on a noisy node (a slow disk, a busy
neighbour), its users really are worse off, and a version-level test rightly sees the canary as
slower; but rolling the release back blames the code for the node. This was the cause of every
false abort on healthy canaries in the project's own benchmark.

When a metric FAILs and its queries kept the pod label (``sum by (pod) (…)``), the same judge is
asked again per canary pod: if exactly one pod shows the regression on its own (it fails, or its
estimate is beyond the tolerance), and the other canary pods taken together neither fail nor
show an effect beyond the tolerance, the difference is that pod's. The
analysis then says so ("pod X is slow; the other canary pods match the baseline") and, by the
policy's ``one_pod_explains``, holds the metric INCONCLUSIVE (the step extends, then waits for a
person: missing evidence never promotes) or keeps the FAIL. A regression in the code shows on
every pod that runs it, so it fails the test of the others too and is never explained away;
with a single canary pod there is nothing to compare and the FAIL stands.

Each extra judgement runs at the metric's own alpha and only after a FAIL. Downgrading a FAIL
can only lower the false-abort rate; the price is time when a regression shows on one pod
before the others have enough data, which the next looks make up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analyzer.judges.base import (
    CountsData,
    HistogramData,
    Judge,
    JudgeContext,
    JudgeData,
    SeriesData,
    on_common_buckets,
)
from analyzer.policy.metrics import MetricBase
from analyzer.sources.base import FloatArray
from analyzer.verdict import Judgement, Outcome, Reason


@dataclass(frozen=True)
class OnePod:
    """The canary pod that explains a FAIL, its judgement alone, and the others' together."""

    pod: str
    alone: Judgement
    others: Judgement


def one_pod_explains(
    judge: Judge,
    baseline: JudgeData,
    pods: Mapping[str, JudgeData],
    metric: MetricBase,
    context: JudgeContext,
) -> OnePod | None:
    """The pod that alone explains the canary's FAIL, or None (see the module docstring)."""
    if len(pods) < 2:
        return None
    judged: dict[tuple[str, ...], Judgement] = {}

    def judgement_of(names: tuple[str, ...]) -> Judgement:
        """Each group of pods is judged once: with two pods, "the others" of one is the other
        alone."""
        if names not in judged:
            data = combined([pods[name] for name in names]) if len(names) > 1 else pods[names[0]]
            judged[names] = judge.judge(baseline, data, metric, context)
        return judged[names]

    explaining = []
    for name in sorted(pods):
        alone = judgement_of((name,))
        if not _shows(alone, metric):
            continue
        others = judgement_of(tuple(pod for pod in sorted(pods) if pod != name))
        if _clean(others, alone, metric):
            explaining.append(OnePod(name, alone, others))
    return explaining[0] if len(explaining) == 1 else None


def _shows(judgement: Judgement, metric: MetricBase) -> bool:
    """The pod shows the regression on its own: it fails, or its estimate is beyond the
    tolerance (a pod holds a fraction of the canary's data: its test may not have the power
    to fail yet when its effect is plain)."""
    return judgement.outcome is Outcome.FAIL or not _within(_estimate(judgement), metric)


def _clean(others: Judgement, alone: Judgement, metric: MetricBase) -> bool:
    """The other pods match the baseline: no FAIL, no growth beyond the allowance (which a
    leak on every pod would show), and an estimate within the tolerance or, short of that, no
    evidence against it at all (an e-value below 1: a new pod's first minutes, or noise, may
    put a healthy pod's estimate a little past the tolerance, while a regression of the code
    builds evidence on every pod that runs it, late onset or not)."""
    if others.outcome is Outcome.FAIL or others.details.get("growing_beyond_allowance"):
        return False
    if _within(_estimate(others), metric):
        return True
    return others.e_value is not None and others.e_value < 1.0


def _estimate(judgement: Judgement) -> float | None:
    """The effect to hold against the tolerance: a histogram's mean ratio when it has one (its
    reported effect is the bucket tail that looks worst, a maximum over boundaries that noise
    pushes up), else the judgement's effect."""
    ratio = judgement.details.get("mean_ratio")
    if isinstance(ratio, float) and math.isfinite(ratio):
        return ratio - 1
    return judgement.effect


def explained(failed: Judgement, found: OnePod, decide: str) -> Judgement:
    """The metric's judgement once ``found`` explains its FAIL, as ``decide`` (the policy's
    ``one_pod_explains``) says: INCONCLUSIVE with that reason, or the FAIL with it noted."""
    sentence = (
        f"pod {found.pod} alone explains it ({found.alone.reason}); the other canary pods match "
        f"the baseline ({found.others.reason}): likely that pod or its node, not the version"
    )
    details = {**failed.details, "pod": found.pod, "one_pod_explains": decide}
    if decide == "fail":
        return failed.model_copy(
            update={"reason": f"{failed.reason}; {sentence}", "details": details}
        )
    return failed.model_copy(
        update={
            "outcome": Outcome.INCONCLUSIVE,
            "reason_code": Reason.ONE_POD,
            "reason": f"{sentence}; reschedule it, or decide by hand (version: {failed.reason})",
            "direction": None,
            "details": {**details, "regression_detected": False},
        }
    )


def _within(effect: float | None, metric: MetricBase) -> bool:
    if effect is None:
        return True
    tolerance = metric.tolerance
    if metric.direction == "increase_is_bad":
        return effect <= tolerance
    if metric.direction == "decrease_is_bad":
        return effect >= 1 / (1 + tolerance) - 1
    return 1 / (1 + tolerance) - 1 <= effect <= tolerance


def combined(parts: Sequence[JudgeData]) -> JudgeData:
    """Several pods' data as one version's: counts and histograms add up, a series averages."""
    first = parts[0]
    if isinstance(first, CountsData):
        counts = [part for part in parts if isinstance(part, CountsData)]
        return CountsData(
            first.timestamps,
            _nansum([part.errors for part in counts]),
            _nansum([part.totals for part in counts]),
        )
    if isinstance(first, HistogramData):
        histograms = [part for part in parts if isinstance(part, HistogramData)]
        return _combined_histograms(histograms)
    stacked = np.vstack([part.values for part in parts if isinstance(part, SeriesData)])
    present = ~np.isnan(stacked)
    count = present.sum(axis=0)
    total = np.where(present, stacked, 0.0).sum(axis=0)
    mean: FloatArray = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return SeriesData(first.timestamps, mean)


def _combined_histograms(parts: Sequence[HistogramData]) -> HistogramData:
    merged = parts[0]
    for part in parts[1:]:
        left, right = on_common_buckets(merged, part)
        sums = observations = None
        if left.sums is not None and right.sums is not None:
            sums = _nansum([left.sums, right.sums])
        if left.observations is not None and right.observations is not None:
            observations = _nansum([left.observations, right.observations])
        merged = HistogramData(
            left.timestamps,
            left.upper_bounds,
            _nansum([left.counts, right.counts]),
            sums,
            observations,
        )
    return merged


def _nansum(arrays: Sequence[FloatArray]) -> FloatArray:
    """Element-wise sum, NaN only where every array is NaN (a pod not scraped adds nothing)."""
    stacked = np.stack(arrays)
    total: FloatArray = np.where(np.isnan(stacked).all(axis=0), np.nan, np.nansum(stacked, axis=0))
    return total
