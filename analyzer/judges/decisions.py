"""From e-values to a Judgement: the bar, the gates, early PASS, and the reason a person reads.

Shared by the counts and histogram judges so that both decide by one rule and report alike.

FAIL when the e-value reaches ``1/alpha`` once ``min_events`` events (errors; for histograms,
observations) were seen in both versions together. Before ``min_samples`` intervals carry data
in both versions the judge is INCONCLUSIVE (TOO_FEW_SAMPLES) unless the e-value reaches
``(1/alpha)²``: a canary failing everything need not wait, and any bar of at least ``1/alpha``
keeps validity. ``decrease_is_bad`` tests the mirror of ``increase_is_bad`` about
``1 / (1 + tolerance)``; ``either`` averages the two e-values (valid under the band between them,
and never weaker than two tests at ``alpha / 2``). Early PASS tests the mirror null (``θ >= θ0``
against ``θ < θ0``) at the same bar; with ``either`` both sides must pass. The judges are
stateless: they evaluate the e-process at the latest interval, and Ville's inequality covers
stopping at the first pass that crosses. A FAIL whose evidence weighs most from a later start
(``analyzer.judges.onset``) ends "regression since interval k", the position of that start among
the intervals given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from analyzer.judges.base import JudgeContext
from analyzer.judges.evalues import LOG_E_CAP
from analyzer.policy.judges import SequentialSpec
from analyzer.policy.metrics import MetricBase
from analyzer.verdict import Judgement, Outcome, Reason

TIMES = "\u00d7"  # the multiplication sign of "x2.1" in reasons


@dataclass(frozen=True)
class Evidence:
    """The four log e-values a decision needs, and the gates around them."""

    log_e_high: float  # against "canary higher than allowed"
    log_e_low: float  # against "canary lower than allowed"
    log_pass_high: float  # that the canary is not higher than allowed
    log_pass_low: float
    samples: int  # intervals with data in both versions
    events: float  # errors, or observations, in both versions


@dataclass(frozen=True)
class SequentialDecision:
    """What the counts and histogram judges decided from their e-values, before the sentence."""

    outcome: Outcome
    reason_code: Reason
    direction: Literal["high", "low"]
    log_e_value: float
    log_pass_value: float
    tail: str  # the end of the reason sentence
    log_bar: float  # the bar this decision was held to: 1/alpha, or its square before min_samples


def decide(
    evidence: Evidence, direction: str, spec: SequentialSpec, context: JudgeContext
) -> SequentialDecision:
    """Apply the bar, the ``min_samples``/``min_events`` gates and early PASS to the e-values."""
    bar = math.log(1.0 / context.alpha)
    high, low = evidence.log_e_high, evidence.log_e_low
    side: Literal["high", "low"] = "high" if direction == "increase_is_bad" else "low"
    if direction == "increase_is_bad":
        log_e, log_pass = high, evidence.log_pass_high
    elif direction == "decrease_is_bad":
        log_e, log_pass = low, evidence.log_pass_low
    else:
        log_e = float(np.logaddexp(high, low) - math.log(2.0))
        side = "high" if high >= low else "low"
        log_pass = min(evidence.log_pass_high, evidence.log_pass_low)
    enough = evidence.samples >= context.min_samples
    shown, bar_shown = f"e-value {format_e(log_e)}", format_e(bar)

    def decision(
        outcome: Outcome, code: Reason, tail: str, applied: float = bar
    ) -> SequentialDecision:
        return SequentialDecision(outcome, code, side, log_e, log_pass, tail, applied)

    if log_e >= (bar if enough else 2 * bar) and evidence.events >= spec.min_events:
        if enough:
            return decision(Outcome.FAIL, Reason.EVIDENCE, f"{shown} ≥ {bar_shown}, regression")
        early = f"{shown} ≥ {format_e(2 * bar)} within {evidence.samples} intervals, regression"
        return decision(Outcome.FAIL, Reason.EVIDENCE, early, 2 * bar)
    if not enough:
        short = (
            f"{shown} < {format_e(2 * bar)} (the bar until {context.min_samples} intervals), "
            f"{evidence.samples} so far"
        )
        return decision(Outcome.INCONCLUSIVE, Reason.TOO_FEW_SAMPLES, short, 2 * bar)
    if log_e >= bar:
        held = (
            f"{shown} ≥ {bar_shown} but {evidence.events:.0f} of {spec.min_events} events "
            "needed before a FAIL"
        )
        return decision(Outcome.INCONCLUSIVE, Reason.EVIDENCE, held)
    if spec.early_pass and log_pass >= bar:
        passed = f"e-value {format_e(log_pass)} ≥ {bar_shown} that it is within tolerance, pass"
        return decision(Outcome.PASS, Reason.EVIDENCE, passed)
    return decision(Outcome.INCONCLUSIVE, Reason.EVIDENCE, f"{shown} < {bar_shown}, no verdict yet")


def since(decision: SequentialDecision, interval: int, note: str = "") -> SequentialDecision:
    """A FAIL whose evidence weighs most from a later interval on says which (1-based)."""
    if decision.outcome is not Outcome.FAIL:
        return decision
    return replace(decision, tail=f"{decision.tail} since interval {interval}{note}")


def format_e(log_e: float) -> str:
    """An e-value given as its log, for people: ``0.39``, ``1,892``, ``1.3e10``."""
    return format_evalue(math.exp(min(log_e, LOG_E_CAP)))


def format_evalue(value: float) -> str:
    """An e-value or its bar, for people, the same in every place that shows one (the judges'
    sentences, the alert, the CLI, the demo's view, the report): ``0.39``, ``1,892``, ``1.3e10``;
    never Python's ``1.3e+10``."""
    magnitude = abs(value)
    if not math.isfinite(value):
        return "∞" if value > 0 else "-∞" if value < 0 else "n/a"
    if 0 < magnitude < 1e-3:
        return plain_scientific(value)
    if magnitude < 10:
        return f"{value:.2g}"
    return f"{value:,.0f}" if magnitude < 999_999.5 else plain_scientific(value)


def plain_scientific(value: float, digits: int = 2) -> str:
    """``1e6``, ``2.5e7``, ``-3.2e-5``: a mantissa and a plain exponent."""
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def percent(ratio: float) -> str:
    return f"{100 * ratio:.3g}%" if math.isfinite(ratio) else "n/a"


def milliseconds(seconds: float) -> str:
    """A latency for people: ``68.6 ms``, ``2.5 s`` from 10 s up."""
    if not math.isfinite(seconds):
        return "n/a" if math.isnan(seconds) else "∞"
    return f"{1000 * seconds:.3g} ms" if seconds < 10 else f"{seconds:.3g} s"


def sequential_spec(metric: MetricBase) -> SequentialSpec:
    spec = getattr(metric, "judge", None)
    if not isinstance(spec, SequentialSpec):
        raise TypeError(f"metric {metric.name!r} is not configured for the sequential judge")
    return spec


def judgement(
    decision: SequentialDecision,
    *,
    subject: str,
    context: JudgeContext,
    sides: tuple[dict[str, float], dict[str, float]],
    effect: tuple[float | None, tuple[float, float] | None],
    details: dict[str, object],
) -> Judgement:
    """Assemble the Judgement with the evidence both judges report."""
    failed = decision.outcome is Outcome.FAIL
    return Judgement(
        outcome=decision.outcome,
        reason=f"{subject}: {decision.tail}",
        reason_code=decision.reason_code,
        direction=decision.direction if failed else None,
        baseline=sides[0],
        canary=sides[1],
        effect=effect[0],
        effect_interval=effect[1],
        e_value=math.exp(min(decision.log_e_value, LOG_E_CAP)),
        threshold=math.exp(min(decision.log_bar, LOG_E_CAP)),
        details={
            "regression_detected": failed,
            "log_e_value": decision.log_e_value,
            "pass_e_value": math.exp(min(decision.log_pass_value, LOG_E_CAP)),
            **details,
        },
    )


def quiet(
    outcome: Outcome, code: Reason, reason: str, sides: tuple[dict[str, float], dict[str, float]]
) -> Judgement:
    """A judgement without a test: no data, or nothing the test could use."""
    return Judgement(
        outcome=outcome,
        reason=reason,
        reason_code=code,
        baseline=sides[0],
        canary=sides[1],
        details={"regression_detected": False},
    )


def no_data(name: str, sides: tuple[dict[str, float], dict[str, float]]) -> Judgement | None:
    empty = [
        version
        for version, side in zip(("baseline", "canary"), sides, strict=True)
        if not side["intervals"]
    ]
    if not empty:
        return None
    which = " and ".join(empty)
    return quiet(Outcome.INCONCLUSIVE, Reason.NO_DATA, f"no data for {name} from {which}", sides)


def allowance(direction: str, tolerance: float) -> str:
    up, down = f"{TIMES}{1 + tolerance:.3g}", f"{TIMES}{1 / (1 + tolerance):.3g}"
    if direction == "increase_is_bad":
        return f"allowed {up}"
    return f"allowed down to {down}" if direction == "decrease_is_bad" else f"allowed {down}-{up}"


def ratio_with_interval(ratio: float, lower: float, upper: float) -> str:
    """``x1.42 [0.91-2.3]`` (with the multiplication sign): the estimate and its anytime-valid
    interval."""
    if not math.isfinite(ratio):
        return "(the baseline had none)"

    def end(value: float) -> str:
        return "∞" if math.isinf(value) else figure(value, 2)

    return f"{TIMES}{figure(ratio, 3)} [{end(lower)}-{end(upper)}]"


def figure(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant figures, written out up to a million (``200``, not
    ``2e+02``), and beyond it with a plain exponent (``3.4e6``)."""
    shown = f"{value:.{digits}g}"
    if "e" not in shown:
        return shown
    if 1 <= abs(value) < 1e6:
        return f"{float(shown):,.0f}"
    return plain_scientific(value, digits)
