"""Analysis hooks' answers as rows of a look's verdict: they make it worse, never better."""

from __future__ import annotations

import pytest

from analyzer.hook_verdicts import hook_row, with_hooks
from analyzer.verdict import Outcome, Verdict

PASSED = Verdict(outcome=Outcome.PASS, reason="score 100 reaches pass_score 95", score=100.0)
UNDECIDED = Verdict(outcome=Outcome.INCONCLUSIVE, reason="no counted metric returned data")


@pytest.mark.parametrize(
    ("verdict", "answer", "critical", "expected"),
    [
        (PASSED, Outcome.FAIL, True, Outcome.FAIL),
        (PASSED, Outcome.INCONCLUSIVE, True, Outcome.INCONCLUSIVE),
        (PASSED, Outcome.PASS, True, Outcome.PASS),
        (PASSED, Outcome.FAIL, False, Outcome.PASS),  # shown, not counted
        (UNDECIDED, Outcome.PASS, True, Outcome.INCONCLUSIVE),  # never better
        (UNDECIDED, Outcome.FAIL, True, Outcome.FAIL),
    ],
)
def test_a_hook_row_counts_like_a_critical_metric(
    verdict: Verdict, answer: Outcome, critical: bool, expected: Outcome
) -> None:
    hooked = with_hooks(verdict, [hook_row("smoke", answer, "said so", critical, {})])
    assert hooked.outcome is expected
    [added] = [metric for metric in hooked.metrics if metric.kind == "hook"]
    assert added.dry_run is not critical and added.judgement.reason == "smoke hook: said so"
    if expected is not verdict.outcome:
        assert hooked.decided_by == ["smoke"] and "smoke hook: said so" in hooked.reason
    else:
        assert hooked.reason == verdict.reason and hooked.score == verdict.score


def test_no_hook_leaves_the_verdict_as_it_was() -> None:
    assert with_hooks(PASSED, []) is PASSED
