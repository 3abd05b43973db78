"""Scoring: alpha allocation, no_data, critical and dry-run metrics, weights, the final look."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analyzer.policy import Policy, load_policy, load_policy_text
from analyzer.scoring import (
    allocate_alpha,
    apply_no_data,
    group_scores,
    metric_weights,
    score,
    settle,
)
from analyzer.verdict import Judgement, MetricVerdict, Outcome, Reason

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PASS, FAIL, UNDECIDED = Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE


def series(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "series", "query": f"{name}{{ {{{{ selector }}}} }}", **fields}


def make_policy(*metrics: dict[str, Any], **analysis: Any) -> Policy:
    return Policy.model_validate(
        {
            "name": "scoring-test",
            "analysis": analysis,
            "metrics": list(metrics),
            "strategy": {"type": "canary", "steps": [{"set_weight": 100}]},
        }
    )


def judged(
    name: str, outcome: Outcome, code: Reason = Reason.EVIDENCE, **details: Any
) -> MetricVerdict:
    judgement = Judgement(
        outcome=outcome, reason=f"{name} was {outcome.value}", reason_code=code, details=details
    )
    return MetricVerdict(name=name, kind="series", judge="mann_whitney", judgement=judgement)


def no_data(name: str) -> MetricVerdict:
    return judged(name, UNDECIDED, Reason.NO_DATA)


# --- alpha ---------------------------------------------------------------------------------


def test_equal_alpha_shares_add_up_to_the_policy_alpha() -> None:
    policy = make_policy(*(series(name) for name in "abcd"), alpha=0.02)
    alphas = allocate_alpha(policy)
    assert alphas == pytest.approx({"a": 0.005, "b": 0.005, "c": 0.005, "d": 0.005})
    assert sum(alphas.values()) == pytest.approx(0.02)


def test_weighted_alpha_follows_weights() -> None:
    policy = load_policy(POLICIES / "default-canary.yaml")  # weights 50 / 35 / 15, alpha 0.01
    alphas = allocate_alpha(policy)
    assert alphas == pytest.approx({"error-ratio": 0.005, "latency": 0.0035, "memory": 0.0015})
    assert sum(alphas.values()) == pytest.approx(policy.analysis.false_abort_rate)


def test_dry_run_alpha_is_an_equal_share_as_if_counted() -> None:
    text = """
name: dry
analysis: {confidence: 0.95}
metrics:
  - {name: a, kind: series, query: 'a{ {{ selector }} }', weight: 60}
  - {name: b, kind: series, query: 'b{ {{ selector }} }', weight: 40}
  - {name: c, kind: series, query: 'c{ {{ selector }} }', dry_run: true}
strategy: {type: canary, steps: [{set_weight: 100}]}
"""
    alphas = allocate_alpha(load_policy_text(text))
    assert alphas == pytest.approx({"a": 0.03, "b": 0.02, "c": 0.05 / 3})
    assert alphas["a"] + alphas["b"] == pytest.approx(0.05)  # dry runs add no false aborts


# --- no_data -------------------------------------------------------------------------------


def test_apply_no_data_follows_the_metric_policy_and_is_idempotent() -> None:
    metric = make_policy(series("a", no_data="fail")).metrics[0]
    applied = apply_no_data(metric, no_data("a").judgement)
    assert applied.outcome is FAIL
    assert applied.reason_code is Reason.NO_DATA
    assert applied.reason.endswith("(counted as no_data: fail)")
    assert apply_no_data(metric, applied) == applied
    evidence = judged("a", UNDECIDED).judgement
    assert apply_no_data(metric, evidence) is evidence


def test_no_data_waits_until_the_final_look() -> None:
    policy = make_policy(series("a", no_data="fail", critical=True), series("b"))
    verdicts = [no_data("a"), judged("b", PASS)]
    waiting = score(policy, verdicts)
    assert waiting.outcome is UNDECIDED
    assert waiting.decided_by == ["a"]
    final = score(policy, verdicts, final=True)
    assert final.outcome is FAIL
    assert final.reason.startswith("a was inconclusive") and final.reason.endswith(
        "— FAIL, critical"
    )


def test_no_data_pass_counts_as_pass_when_other_metrics_have_data() -> None:
    policy = make_policy(series("a", no_data="pass"), series("b"))
    verdict = score(policy, [no_data("a"), judged("b", PASS)], final=True)
    assert verdict.outcome is PASS
    assert verdict.score == 100.0


def test_missing_data_never_promotes() -> None:
    policy = make_policy(
        series("a", no_data="pass"), series("b", no_data="pass"), series("c", dry_run=True)
    )
    verdicts = [no_data("a"), no_data("b"), judged("c", PASS)]
    for final in (False, True):
        verdict = score(policy, verdicts, final=final)
        assert verdict.outcome is UNDECIDED
        assert "no_data" in verdict.reason
        assert verdict.decided_by == ["a", "b"]


def test_every_metric_missing_with_no_data_fail_fails() -> None:
    policy = make_policy(series("a", no_data="fail"), series("b", no_data="fail"))
    assert score(policy, [no_data("a"), no_data("b")], final=True).outcome is FAIL


# --- critical, dry run, weights ------------------------------------------------------------


def test_all_pass() -> None:
    policy = make_policy(series("a"), series("b"))
    verdict = score(policy, [judged("a", PASS), judged("b", PASS)])
    assert (verdict.outcome, verdict.score, verdict.decided_by) == (PASS, 100.0, ["a", "b"])


def test_a_critical_failure_fails_whatever_the_score() -> None:
    others = [series(f"m{index}", weight=4) for index in range(24)]  # 96 of the score
    policy = make_policy(series("error-ratio", critical=True, weight=4), *others)
    verdicts = [judged("error-ratio", FAIL), *(judged(m["name"], PASS) for m in others)]
    verdict = score(policy, verdicts)
    assert verdict.score == 96.0  # above pass_score 95
    assert verdict.outcome is FAIL
    assert verdict.decided_by == ["error-ratio"]
    assert verdict.reason == "error-ratio was fail — FAIL, critical"  # the metric and effect first


def test_dry_run_metrics_are_reported_but_never_counted() -> None:
    policy = make_policy(series("a"), series("shadow", dry_run=True, critical=True))
    verdict = score(policy, [judged("shadow", FAIL), judged("a", PASS)])
    assert verdict.outcome is PASS
    assert verdict.score == 100.0
    shadow = verdict.metrics[1]
    assert (shadow.name, shadow.dry_run, shadow.weight, shadow.outcome) == (
        "shadow",
        True,
        0.0,
        FAIL,
    )


@pytest.mark.parametrize(
    ("weights", "outcome", "expected_score"),
    [
        ((4, 32, 32, 32), PASS, 96.0),  # a small failure is within the pass score
        ((10, 30, 30, 30), UNDECIDED, 90.0),  # between marginal 75 and pass 95
        ((30, 20, 25, 25), FAIL, 70.0),  # below marginal, nothing undecided to save it
    ],
)
def test_weights_decide_how_much_a_failure_costs(
    weights: tuple[int, ...], outcome: Outcome, expected_score: float
) -> None:
    policy = make_policy(*(series(n, weight=w) for n, w in zip("abcd", weights, strict=True)))
    verdicts = [judged("a", FAIL), *(judged(name, PASS) for name in "bcd")]
    verdict = score(policy, verdicts)
    assert verdict.outcome is outcome
    assert verdict.score == expected_score
    assert ("a" in verdict.decided_by) is (outcome is not PASS)


def test_undecided_metrics_keep_a_low_score_inconclusive() -> None:
    policy = make_policy(series("a", weight=30), series("b", weight=70))
    verdict = score(policy, [judged("a", UNDECIDED), judged("b", PASS)])
    assert (verdict.outcome, verdict.score, verdict.decided_by) == (UNDECIDED, 70.0, ["a"])
    assert "could reach 100" in verdict.reason


def test_fail_when_even_undecided_metrics_passing_would_not_reach_marginal() -> None:
    policy = make_policy(series("a", weight=50), series("b", weight=25), series("c", weight=25))
    verdict = score(policy, [judged("a", FAIL), judged("b", UNDECIDED), judged("c", PASS)])
    assert verdict.outcome is FAIL
    assert verdict.decided_by == ["a"]
    assert verdict.reason.startswith("a was fail — FAIL: score 25, at most 50 were every")
    assert verdict.score == 25  # the score the sentence cites is the verdict's score


def test_an_undecided_critical_metric_blocks_a_pass() -> None:
    policy = make_policy(series("crit", weight=2, critical=True), series("rest", weight=98))
    verdict = score(policy, [judged("crit", UNDECIDED), judged("rest", PASS)])
    assert verdict.score == 98.0
    assert verdict.outcome is UNDECIDED
    assert verdict.decided_by == ["crit"]
    assert verdict.reason == "crit (critical) is undecided: crit was inconclusive"


def test_group_scores_add_up_to_the_summary_score() -> None:
    policy = make_policy(
        series("a", weight=25, group="errors"),
        series("b", weight=25, group="errors"),
        series("c", weight=50, group="latency"),
        pass_score=70,
        marginal_score=50,
    )
    verdicts = [judged("a", PASS), judged("b", FAIL), judged("c", PASS)]
    groups = group_scores(settle(policy, verdicts))
    assert groups == {"errors": 50.0, "latency": 100.0}
    assert score(policy, verdicts).score == 0.5 * 50.0 + 0.5 * 100.0


def test_policy_flags_win_over_the_callers() -> None:
    policy = make_policy(series("b"), series("a", critical=True))
    forged = judged("a", FAIL).model_copy(update={"critical": False, "weight": 99.0})
    verdict = score(policy, [forged, judged("b", PASS)])
    assert verdict.outcome is FAIL
    assert [m.name for m in verdict.metrics] == ["b", "a"]  # policy order
    assert verdict.metrics[1].critical is True
    assert metric_weights(policy) == {"a": 50.0, "b": 50.0}


def test_verdicts_must_match_the_policy() -> None:
    policy = make_policy(series("a"), series("b"))
    with pytest.raises(ValueError, match="do not match"):
        score(policy, [judged("a", PASS)])
    with pytest.raises(ValueError, match="do not match"):
        score(policy, [judged("a", PASS), judged("b", PASS), judged("c", PASS)])


# --- final look ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "details", "counts_as_pass"),
    [
        (Reason.EVIDENCE, {"regression_detected": False}, True),
        (Reason.EVIDENCE, {}, False),
        (Reason.EVIDENCE, {"regression_detected": None}, False),
        (Reason.TOO_FEW_SAMPLES, {"regression_detected": False}, False),
        (Reason.NO_DATA, {"regression_detected": False}, False),
    ],
)
def test_final_look_passes_only_harmless_evidence(
    code: Reason, details: dict[str, Any], counts_as_pass: bool
) -> None:
    policy = make_policy(series("a"), series("b"))
    verdicts = [judged("a", UNDECIDED, code, **details), judged("b", PASS)]
    assert score(policy, verdicts).outcome is UNDECIDED
    final = score(policy, verdicts, final=True)
    assert (final.outcome is PASS) is counts_as_pass
    if counts_as_pass:
        assert "final look" in final.metrics[0].judgement.reason
