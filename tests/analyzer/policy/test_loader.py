"""A broken policy names the file, the line and the field; a good one loads as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from analyzer.errors import PolicyError
from analyzer.policy import Policy, load_policy, load_policy_text
from analyzer.policy.metrics import CountsMetric, SeriesMetric
from analyzer.policy.strategy import CanaryStrategy, PauseStep

POLICIES = sorted((Path(__file__).parents[3] / "policies").glob("*.yaml"))

VALID = """\
name: checkout
args:
  - name: route
analysis:
  interval: 1m
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(http_requests_total{ {{ selector }}, code=~"5.." }[{{ interval }}]))
    total: sum(increase(http_requests_total{ {{ selector }}, route="{{ route }}" }[{{ interval }}]))
  - name: memory
    kind: series
    query: avg(process_resident_memory_bytes{ {{ selector }} })
strategy:
  type: canary
  steps:
    - set_weight: 10
    - pause: {duration: 2m}
    - analyze: {duration: 5m}
    - pause:
    - set_weight: 100
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [problem.render("p.yaml") for problem in caught.value.problems]


def test_shipped_policies_are_all_valid() -> None:
    assert {path.name for path in POLICIES} >= {
        "default-canary.yaml",
        "rolling.yaml",
        "blue-green.yaml",
        "targeted-canary.yaml",
    }
    for path in POLICIES:
        assert load_policy(path).name


def test_valid_policy_loads_with_defaults_and_durations() -> None:
    policy = load_policy_text(VALID)
    counts, series = policy.metrics
    assert isinstance(counts, CountsMetric) and counts.judge.type == "sequential"
    assert isinstance(series, SeriesMetric) and series.judge.type == "mann_whitney"
    assert isinstance(policy.strategy, CanaryStrategy)
    pause = policy.strategy.steps[1]
    assert isinstance(pause, PauseStep) and pause.pause.duration is not None
    assert pause.pause.duration.total_seconds() == 120
    manual = policy.strategy.steps[3]
    assert isinstance(manual, PauseStep) and manual.pause.duration is None
    assert policy.analysis.false_abort_rate == 0.01


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    kind: series\n",
            "    kind: series\n    tolerence: 0.2\n",
            "p.yaml:13: metrics[1].tolerence: unknown field 'tolerence': did you mean tolerance?",
        ),
        (
            "  interval: 1m\n",
            "  interval: 1m\n  min_samples: lots\n",
            "p.yaml:6: analysis.min_samples: expected a whole number, found the text 'lots'",
        ),
        ("name: checkout\n", "", "p.yaml:1: name: missing required field name"),
        (
            "duration: 2m",
            "duration: 2 minutes",
            "p.yaml:18: strategy.steps[1].pause.duration: bad duration '2 minutes': write 2m",
        ),
        (
            "    kind: series\n",
            "    kind: series\n    judge: magic\n",
            "p.yaml:13: metrics[1].judge: unknown judge 'magic' (expected one of "
            "mann_whitney, threshold, trend)",
        ),
        (
            'route="{{ route }}"',
            'route="{{ path }}"',
            "p.yaml:10: metrics[0].total: template uses undefined variable {{ path }}",
        ),
        (
            "  - name: memory\n",
            "  - name: errors\n",
            "p.yaml:11: metrics[1].name: duplicate metric name 'errors' (first used by metrics[0])",
        ),
        (
            "    kind: series\n",
            "    kind: series\n    weight: 40\n",
            "p.yaml:7: metrics[0].weight: metric 'errors' has no weight while others do",
        ),
        (
            "    - set_weight: 100\n",
            "    - set_weight: 60\n",
            "p.yaml:16: strategy.steps: steps never reach 100% (the last set_weight is 60)",
        ),
        (
            "    - set_weight: 100\n",
            "    - set_weight: 5\n    - set_weight: 100\n",
            "p.yaml:21: strategy.steps[4].set_weight: weight goes down from 10 to 5",
        ),
        (
            "  type: canary\n",
            "  type: canary\n  type: rolling\n",
            "p.yaml:16: strategy.type: duplicate key 'type'",
        ),
        (
            "    - analyze: {duration: 5m}\n",
            "    - analyze: {duration: 5m}\n      pause: {}\n",
            "p.yaml:19: strategy.steps[2]: a step has exactly one of set_weight, pause or analyze",
        ),
        (
            "    kind: counts\n",
            "    kind: count\n",
            "p.yaml:8: metrics[0].kind: unknown metric kind 'count': did you mean counts? "
            "(expected one of counts, histogram, series, threshold)",
        ),
        (
            "{{ selector }} })",
            "{{ selector } })",
            "p.yaml:13: metrics[1].query: malformed placeholder",
        ),
        (
            "  interval: 1m\n",
            "  interval: [1m\n",
            "p.yaml:5: (document): YAML syntax at line 5: a [ or { opened on this line is not "
            "closed where expected",
        ),
        (  # the form to write, not a class's name
            "    - pause: {duration: 2m}\n",
            "    - pause: [2m]\n",
            "p.yaml:18: strategy.steps[1].pause: expected a mapping such as `pause: {duration: 5m}",
        ),
        (
            "strategy:\n",
            "traffic: 3\nstrategy:\n",
            "p.yaml:14: traffic: expected a mapping such as `traffic: {router: gateway_api}`, "
            "found the number 3",
        ),
    ],
)
def test_each_invalid_case_names_file_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in VALID
    found = problems_of(VALID.replace(old, new, 1))
    assert any(line.startswith(expected) for line in found), found


def test_weights_must_add_up_to_100() -> None:
    text = VALID.replace("    kind: counts\n", "    kind: counts\n    weight: 70\n").replace(
        "    kind: series\n", "    kind: series\n    weight: 20\n"
    )
    assert problems_of(text) == [
        "p.yaml:6: metrics: metric weights add up to 90, not 100 (dry_run metrics do not count)"
    ]
    assert load_policy_text(text.replace("weight: 20", "weight: 30")).metrics[1].weight == 30


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = VALID.replace("interval: 1m", "interval: soon").replace(
        "set_weight: 10\n", "set_weight: 300\n"
    )
    found = problems_of(text)
    assert len(found) == 2
    assert found[0].startswith("p.yaml:5: analysis.interval: bad duration 'soon'")
    assert found[1].startswith("p.yaml:17: strategy.steps[0].set_weight: must be at least 0 and")


def test_a_problem_in_a_second_strategy_kind_is_located() -> None:
    text = VALID.split("strategy:", maxsplit=1)[0] + (
        "strategy:\n  type: rolling\n  batches:\n    - percent: 50\n      analyze: 5m\n"
        "    - replicas: 3\n      percent: 100\n"
    )
    assert problems_of(text) == [
        "p.yaml:19: strategy.batches[1]: a batch has exactly one of replicas or percent"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml:1: (document): the file is empty"),
        ("- just\n- a list\n", "p.yaml:1: (document): a policy is a YAML mapping"),
    ],
)
def test_documents_that_are_not_policies(text: str, expected: str) -> None:
    assert problems_of(text)[0].startswith(expected)


def test_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read file"):
        load_policy(tmp_path / "missing.yaml")


def test_policy_built_in_code_is_held_to_the_same_rules() -> None:
    data = {
        "name": "x",
        "metrics": [{"name": "m", "kind": "series", "query": "up{ {{ selector }} }"}],
        "strategy": {"type": "canary", "steps": [{"set_weight": 50}]},
    }
    with pytest.raises(ValidationError, match="never reach 100%"):
        Policy.model_validate(data)
