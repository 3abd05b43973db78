"""``analysis.baseline``: the stable fleet (default) or a fresh baseline beside the canary."""

from __future__ import annotations

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy_text

BASE = """\
name: p
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }} }[{{ interval }}]))
    total: sum(increase(t{ {{ selector }} }[{{ interval }}]))
"""
STEPS = """\
strategy:
  type: canary
  steps:
    - set_weight: 10
    - analyze: {duration: 5m}
    - set_weight: 50
    - analyze: {duration: 5m}
    - set_weight: 100
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [problem.render("p.yaml") for problem in caught.value.problems]


def test_the_default_is_the_stable_fleet() -> None:
    assert load_policy_text(BASE + STEPS).analysis.baseline == "stable"


def test_fresh_loads_with_weight_steps_analysed_up_to_half() -> None:
    policy = load_policy_text(BASE + "analysis: {baseline: fresh}\n" + STEPS)
    assert policy.analysis.baseline == "fresh"


def test_a_bad_value_names_file_line_and_field() -> None:
    (found,) = problems(BASE + "analysis:\n  baseline: warm\n" + STEPS)
    assert found.startswith("p.yaml:8:")
    assert "analysis.baseline" in found
    assert "unknown baseline 'warm' (expected one of stable, fresh)" in found


def test_analysis_above_half_is_refused_with_a_fresh_baseline() -> None:
    steps = STEPS.replace("set_weight: 50", "set_weight: 75")
    (found,) = problems(BASE + "analysis: {baseline: fresh}\n" + steps)
    assert "p.yaml:14: strategy.steps[3].analyze" in found
    assert "analysis at weight 75 with a fresh baseline" in found


@pytest.mark.parametrize(
    ("strategy", "why"),
    [
        (
            "strategy:\n  type: targeted\n  match: [{header: {name: x-beta, value: 'yes'}}]\n"
            "  analyze: {duration: 5m}\n  steps: [{set_weight: 100}]\n"
            "traffic: {router: gateway_api}\n",
            "a targeted audience is not a random share",
        ),
        (
            "strategy: {type: rolling, batches: [{percent: 100}]}\n",
            "only weight steps give a fresh baseline",
        ),
    ],
)
def test_fresh_needs_a_canary_strategy(strategy: str, why: str) -> None:
    (found,) = problems(BASE + "analysis: {baseline: fresh}\n" + strategy)
    assert "analysis.baseline: fresh needs strategy type canary" in found
    assert why in found


def test_fresh_is_refused_on_ingress_nginx() -> None:
    text = BASE + "analysis: {baseline: fresh}\n" + STEPS + "traffic: {router: nginx_ingress}\n"
    (found,) = problems(text)
    assert "analysis.baseline: fresh needs a three-way split" in found
    assert "one canary Ingress per host" in found
