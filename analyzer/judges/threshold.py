"""The ``threshold`` judge: an absolute condition on the canary alone (Argo / Flagger style).

Some limits hold whatever the baseline does: p99 latency under 500 ms, an error ratio under 1%.
The canary's samples in the window reduce to one value (``aggregate``: last, mean, max or min,
NaN ignored) that is compared with ``max`` and ``min``; counts reduce to their error ratio
sum(errors) / sum(totals), so a quiet interval does not weigh as much as a busy one. Histograms
are refused: the policy model allows only the sequential judge on them.

Like every judge, a threshold needs ``min_samples`` points before it decides, with one exception:
when more samples could not undo a broken bound (the window's max is already above ``max``, or its
min below ``min``) the FAIL is certain and is reported at once, as Argo fails on one measurement.
"""

from __future__ import annotations

import numpy as np

from analyzer.judges.base import CountsData, HistogramData, JudgeContext, JudgeData
from analyzer.policy.judges import ThresholdSpec
from analyzer.policy.metrics import MetricBase
from analyzer.verdict import Judgement, Outcome, Reason


class ThresholdJudge:
    """The ``threshold`` judge for series, threshold and counts metrics; the baseline is unused."""

    def judge(
        self, baseline: JudgeData, canary: JudgeData, metric: MetricBase, context: JudgeContext
    ) -> Judgement:
        spec = getattr(metric, "judge", None)
        if not isinstance(spec, ThresholdSpec):
            raise TypeError(f"metric {metric.name!r} is not configured for the threshold judge")
        value, samples = canary_value(canary, spec.aggregate)
        label = "error ratio" if isinstance(canary, CountsData) else spec.aggregate
        bounds = {"max": spec.max, "min": spec.min}
        evidence = {"aggregate": label, **bounds}
        if value is None:
            return Judgement(
                outcome=Outcome.INCONCLUSIVE,
                reason=f"no canary data for {metric.name}",
                reason_code=Reason.NO_DATA,
                canary={"count": 0.0},
                threshold=_first_bound(spec),
                details=evidence,
            )
        broken = _broken_bound(value, spec)
        observed = {"count": float(samples), "value": value}
        how = "" if isinstance(canary, CountsData) else f" {label}"
        shown = f"canary {metric.name}{how} {value:.4g}"
        # A window's max only grows and its min only falls as samples arrive.
        certain = broken is not None and broken[0] == label
        if samples < context.min_samples and not certain:
            return Judgement(
                outcome=Outcome.INCONCLUSIVE,
                reason=f"{shown} from {samples} points, fewer than min_samples "
                f"{context.min_samples}",
                reason_code=Reason.TOO_FEW_SAMPLES,
                canary=observed,
                threshold=broken[1] if broken else _first_bound(spec),
                details=evidence,
            )
        if broken is not None:
            kind, bound = broken
            return Judgement(
                outcome=Outcome.FAIL,
                reason=f"{shown} {'>' if kind == 'max' else '<'} {kind} {bound:g}",
                direction="high" if kind == "max" else "low",
                canary=observed,
                threshold=bound,
                details={**evidence, "value": value, "bound": bound, "regression_detected": True},
            )
        within = " and ".join(
            f"{kind} {bound:g}" for kind, bound in bounds.items() if bound is not None
        )
        return Judgement(
            outcome=Outcome.PASS,
            reason=f"{shown} within {within}",
            canary=observed,
            threshold=_first_bound(spec),
            details={
                **evidence,
                "value": value,
                "bound": _first_bound(spec),
                "regression_detected": False,
            },
        )


def canary_value(data: JudgeData, aggregate: str) -> tuple[float | None, int]:
    """The one value compared with the bounds, and how many intervals it was made from."""
    if isinstance(data, HistogramData):
        raise TypeError("a threshold compares series or counts, not histogram buckets")
    if isinstance(data, CountsData):
        errors = np.asarray(data.errors, dtype=np.float64)
        totals = np.asarray(data.totals, dtype=np.float64)
        served = np.isfinite(errors) & np.isfinite(totals) & (totals > 0)
        total = float(np.sum(totals[served]))
        if total <= 0:
            return None, 0
        return float(np.sum(errors[served])) / total, int(np.count_nonzero(served))
    values = np.asarray(data.values, dtype=np.float64)
    present = ~np.isnan(values)
    if not present.any():
        return None, 0
    kept = values[present]
    if aggregate == "last":
        # The latest timestamp rather than the last position, so order is not assumed.
        reduced = kept[int(np.argmax(np.asarray(data.timestamps)[present]))]
    elif aggregate == "mean":
        reduced = np.mean(kept)
    elif aggregate == "max":
        reduced = np.max(kept)
    else:
        reduced = np.min(kept)
    return float(reduced), int(kept.size)


def _broken_bound(value: float, spec: ThresholdSpec) -> tuple[str, float] | None:
    if spec.max is not None and value > spec.max:
        return "max", spec.max
    if spec.min is not None and value < spec.min:
        return "min", spec.min
    return None


def _first_bound(spec: ThresholdSpec) -> float | None:
    return spec.max if spec.max is not None else spec.min
