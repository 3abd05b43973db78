"""Mistakes people make writing a policy from the README, and the exact problems they get back.

Each case is a small policy with one or more mistakes; each expected problem is the field's path,
its line, and words its message must contain: what is wrong in the policy's words and what to
write instead. A message that names a Python class, a pydantic term or a regex fails here.
"""

from __future__ import annotations

import pytest

from analyzer.errors import PolicyError, PolicyProblem
from analyzer.policy import load_policy_text
from analyzer.policy.metrics import CountsMetric
from analyzer.policy.models import ALERT_ROUTES_SETTING
from analyzer.policy.strategy import AnalyzeStep, BlueGreenStrategy, PauseStep, TargetedStrategy
from workers.settings import ROUTES_VARIABLE

HEAD = "name: checkout\n"
METRICS = """\
metrics:
  - name: errors
    kind: counts
    errors: sum(rate(e{ {{ selector }} }[1m]))
    total: sum(rate(t{ {{ selector }} }[1m]))
"""
SERIES = """\
metrics:
  - name: latency
    kind: series
    query: avg(l{ {{ selector }} })
"""
STRATEGY = """\
strategy:
  type: canary
  steps:
    - set_weight: 10
    - analyze: 5m
    - set_weight: 100
"""


def doc(
    *, head: str = HEAD, metrics: str = METRICS, strategy: str = STRATEGY, tail: str = ""
) -> str:
    return head + metrics + strategy + tail


def canary(*steps: str) -> str:
    """A canary strategy of these steps, each written as after its ``- ``."""
    return "strategy:\n  type: canary\n  steps:\n" + "".join(f"    - {step}\n" for step in steps)


def with_metric(extra: str) -> str:
    """The counts metric with ``extra`` lines (indented four spaces) after its queries."""
    return METRICS + extra


CASES = [
    pytest.param(
        doc(
            metrics="metrics:\n  - name: p99\n    kind: threshold\n"
            "    query: max(l{ {{ selector }} })\n    judge: sequential\n"
        ),
        [
            (
                "metrics[0].judge",
                6,
                (
                    "'sequential' cannot judge a threshold metric",
                    "`judge: {type: threshold, max: 0.5}`",
                ),
            )
        ],
        id="judge-as-text-under-threshold",
    ),
    pytest.param(
        doc(metrics=with_metric("    judge:\n")),
        [
            (
                "metrics[0].judge",
                7,
                ("expected a mapping such as `judge: {type: sequential}`", "found nothing"),
            )
        ],
        id="judge-empty",
    ),
    pytest.param(
        doc(metrics=with_metric("    judge: 3\n")),
        [
            (
                "metrics[0].judge",
                7,
                ("expected a mapping such as `judge: {type: sequential}`", "found the number 3"),
            )
        ],
        id="judge-a-number",
    ),
    pytest.param(
        doc(metrics=with_metric("    judge: mannwhitney\n")),
        [("metrics[0].judge", 7, ("unknown judge 'mannwhitney'", "did you mean mann_whitney?"))],
        id="judge-typo",
    ),
    pytest.param(
        doc(metrics=with_metric("    judge: {type: bayes}\n")),
        [
            (
                "metrics[0].judge.type",
                7,
                ("unknown judge 'bayes'", "sequential, mann_whitney, threshold"),
            )
        ],
        id="judge-unknown-type-in-mapping",
    ),
    pytest.param(
        doc(
            metrics="metrics:\n  - name: latency\n    kind: histogram\n"
            "    buckets: sum by (le) (b{ {{ selector }} })\n    judge: mann_whitney\n"
        ),
        [("metrics[0].judge", 6, ("cannot judge a histogram metric", "`judge: sequential`"))],
        id="judge-not-for-histogram",
    ),
    pytest.param(
        doc(metrics="metrics:\n  - name: errors\n  kind: counts\n"),
        [
            (
                "(document)",
                4,
                (
                    "YAML syntax at line 4, column 3",
                    "in the column of the `- ` on line 3",
                    "lines up with `name:`, 4 spaces in",
                    "`  kind: counts`",
                ),
            )
        ],
        id="yaml-block-end-question",
    ),
    pytest.param(
        doc(tail="analysis:\n\tinterval: 1m\n"),
        [("(document)", 14, ("a tab in the indentation", "spaces only"))],
        id="yaml-tab",
    ),
    pytest.param(
        doc(tail="analysis:\n  interval 1m\n  alpha: 0.01\n"),
        [
            (
                "(document)",
                14,
                ("a key without its colon", "write `interval: 1m`", "the line: `  interval 1m`"),
            )
        ],
        id="yaml-missing-colon",
    ),
    pytest.param(
        "name: checkout\ndescription: errors: too many\n" + METRICS + STRATEGY,
        [("(document)", 2, ("must be quoted", '`description: "errors: too many"`'))],
        id="yaml-second-colon",
    ),
    pytest.param(
        'name: checkout\ndescription: "oops\n' + METRICS + STRATEGY,
        [
            (
                "(document)",
                2,
                ("a quote opened on this line is never closed", '`description: "oops`'),
            )
        ],
        id="yaml-unclosed-quote",
    ),
    pytest.param(
        doc(tail="alerts: [oncall\n"),
        [("(document)", 13, ("a [ or { opened on this line is not closed", "`alerts: [oncall`"))],
        id="yaml-unclosed-bracket",
    ),
    pytest.param(
        doc(strategy=canary("set_weight: 10\n  - set_weight: 100")),
        [
            (
                "(document)",
                11,
                ("the indentation (2 spaces) lines up with nothing", "`  - set_weight: 100`"),
            )
        ],
        id="yaml-list-item-misindented",
    ),
    pytest.param(
        doc(metrics="metrics:\n  - name: latency\n    kind: series\n    query: {{ selector }}\n"),
        [("metrics[0].query", 5, ("read as a YAML mapping", 'in quotes (`query: "{{ ... }}"`)'))],
        id="yaml-template-unquoted",
    ),
    pytest.param(
        "name: checkout\nowner: @sre\n" + METRICS + STRATEGY,
        [("(document)", 2, ("cannot start with @", '`owner: "@sre"`'))],
        id="yaml-at-sign",
    ),
    pytest.param(
        doc(strategy=canary("analyze: ten minutes", "set_weight: 100")),
        [("strategy.steps[0].analyze", 10, ("bad duration 'ten minutes'", "e.g. 30s, 5m, 1h30m"))],
        id="analyze-duration-in-words",
    ),
    pytest.param(
        doc(tail="alerts: [https://hooks.slack.com/services/T0/B0/x]\n"),
        [
            (
                "alerts[0]",
                13,
                (
                    "alert routes are names defined in settings (CANARIST_ALERT_ROUTES",
                    "not URLs: write `alerts: [oncall]`",
                ),
            )
        ],
        id="alerts-url",
    ),
    pytest.param(
        doc(tail="alerts: [OnCall]\n"),
        [("alerts[0]", 13, ("a name is lowercase", "write oncall, not 'OnCall'"))],
        id="alerts-uppercase",
    ),
    pytest.param(
        doc(tail="alerts: oncall\n"),
        [("alerts", 13, ("expected a list", "write `alerts: [oncall]`"))],
        id="alerts-a-text",
    ),
    pytest.param(
        doc(metrics=with_metric("    tolerance: ten percent\n")),
        [("metrics[0].tolerance", 7, ("a percentage such as 10%", "found the text 'ten percent'"))],
        id="tolerance-words",
    ),
    pytest.param(
        doc(metrics=with_metric("    tolerance: 20000%\n")),
        [("metrics[0].tolerance", 7, ("must be at least 0 and at most 100", "0.1 = 10%"))],
        id="tolerance-percent-too-big",
    ),
    pytest.param(
        doc(tail="analysys:\n  interval: 1m\n"),
        [("analysys", 13, ("unknown field 'analysys': did you mean analysis?",))],
        id="top-level-typo",
    ),
    pytest.param(
        doc(metrics=with_metric("    tolerence: 0.2\n")),
        [("metrics[0].tolerence", 7, ("unknown field 'tolerence': did you mean tolerance?",))],
        id="nested-typo",
    ),
    pytest.param(
        doc(tail="analysis:\n  failureLimit: 2\n"),
        [("analysis.failureLimit", 14, ("did you mean failure_limit?",))],
        id="camel-case-argo",
    ),
    pytest.param(
        doc(strategy=canary("setWeight: 10", "set_weight: 100")),
        [("strategy.steps[0]", 10, ("'setWeight': did you mean set_weight?",))],
        id="step-camel-case",
    ),
    pytest.param(
        doc(strategy=canary("set_weight: 10\n      pause: 1m", "set_weight: 100")),
        [
            (
                "strategy.steps[0]",
                10,
                ("exactly one of set_weight, pause or analyze", "its own `- ` item"),
            )
        ],
        id="step-two-kinds",
    ),
    pytest.param(
        doc(strategy=canary("analyze: {duratoin: 5m}", "set_weight: 100")),
        [("strategy.steps[0].analyze.duratoin", 10, ("did you mean duration?",))],
        id="analyze-typo-duration",
    ),
    pytest.param(
        doc(metrics=SERIES + "    judge: {type: mann_whitney, nan: remove}\n"),
        [("metrics[0].judge.nan", 6, ("did you mean nan_strategy?",))],
        id="judge-param-typo",
    ),
    pytest.param(
        doc(tail="analysis:\n  min_samples: three\n"),
        [("analysis.min_samples", 14, ("expected a whole number", "found the text 'three'"))],
        id="wrong-type-integer",
    ),
    pytest.param(
        doc(metrics=with_metric("    critical: maybe\n")),
        [("metrics[0].critical", 7, ("expected true or false", "found the text 'maybe'"))],
        id="wrong-type-bool",
    ),
    pytest.param(
        "name: 42\n" + METRICS + STRATEGY,
        [("name", 1, ("expected text, found the number 42", "quote it"))],
        id="name-a-number",
    ),
    pytest.param(
        "name: Checkout Service\n" + METRICS + STRATEGY,
        [("name", 1, ("a name is lowercase", "write checkout-service, not 'Checkout Service'"))],
        id="name-with-spaces",
    ),
    pytest.param(
        doc(metrics=with_metric("    weight: 150\n")),
        [("metrics[0].weight", 7, ("must be more than 0 and at most 100", "found the number 150"))],
        id="weight-over-100",
    ),
    pytest.param(
        doc(strategy=canary("set_weight: 150", "set_weight: 100")),
        [
            (
                "strategy.steps[0].set_weight",
                10,
                (
                    "must be at least 0 and at most 100",
                    "percent of traffic",
                    "found the number 150",
                ),
            )
        ],
        id="set-weight-over-100",
    ),
    pytest.param(
        doc(strategy=canary("set_weight: 50", "set_weight: 20", "set_weight: 100")),
        [("strategy.steps[1].set_weight", 11, ("weight goes down from 50 to 20",))],
        id="steps-go-down",
    ),
    pytest.param(
        doc(strategy=canary("set_weight: 50")),
        [("strategy.steps", 9, ("never reach 100%", "end with set_weight: 100"))],
        id="steps-never-100",
    ),
    pytest.param(
        doc(
            strategy="strategy:\n  type: rolling\n  batches:\n"
            "    - percent: 50\n    - percent: 50\n    - percent: 100\n"
        ),
        [("strategy.batches[1].percent", 11, ("batches are cumulative", "does not grow from 50"))],
        id="batches-do-not-grow",
    ),
    pytest.param(
        doc(strategy="strategy:\n  type: canry\n  steps:\n    - set_weight: 100\n"),
        [("strategy.type", 8, ("unknown strategy type 'canry'", "did you mean canary?"))],
        id="unknown-strategy",
    ),
    pytest.param(
        doc(tail="traffic:\n  router: gateway-api\n"),
        [("traffic.router", 14, ("unknown router 'gateway-api'", "did you mean gateway_api?"))],
        id="unknown-router",
    ),
    pytest.param(
        doc(
            metrics="metrics:\n  - name: errors\n    kind: ratio\n    query: x{ {{ selector }} }\n"
        ),
        [
            (
                "metrics[0].kind",
                4,
                ("unknown metric kind 'ratio'", "counts, histogram, series, threshold"),
            )
        ],
        id="unknown-kind",
    ),
    pytest.param(
        doc(metrics="metrics:\n  - name: errors\n    query: x{ {{ selector }} }\n"),
        [("metrics[0]", 3, ("missing kind", "counts, histogram, series, threshold"))],
        id="missing-kind",
    ),
    pytest.param(
        doc(metrics="metrics:\n  - name: latency\n    kind: series\n"),
        [("metrics[0].query", 3, ("missing required field query", "PromQL"))],
        id="missing-query",
    ),
    pytest.param(
        HEAD + METRICS,
        [
            (
                "strategy",
                1,
                ("missing required field strategy", "`strategy: {type: canary, steps: [...]}`"),
            )
        ],
        id="missing-strategy",
    ),
    pytest.param(
        doc(tail="analysis:\n  interval: 1 minute\n"),
        [("analysis.interval", 14, ("bad duration '1 minute': write 1m",))],
        id="bad-duration-words",
    ),
    pytest.param(
        doc(tail="analysis:\n  interval: soon\n"),
        [("analysis.interval", 14, ("bad duration 'soon'", "e.g. 30s, 5m, 1h30m"))],
        id="bad-duration",
    ),
    pytest.param(
        doc(metrics=SERIES + "    judge: {type: mann_whitney, confidence: 95}\n"),
        [
            (
                "metrics[0].judge.confidence",
                6,
                ("more than 0.5 and less than 1", "write 0.95 or 95%"),
            )
        ],
        id="confidence-as-percent-number",
    ),
    pytest.param(
        doc(tail="analysis:\n  alpha: 5\n"),
        [("analysis.alpha", 14, ("less than 0.5", "write 0.05 or 5%"))],
        id="alpha-too-big",
    ),
    pytest.param(
        doc(metrics=with_metric("    direction: increase\n")),
        [
            (
                "metrics[0].direction",
                7,
                ("unknown direction 'increase'", "did you mean increase_is_bad?"),
            )
        ],
        id="direction-typo",
    ),
    pytest.param(
        doc(
            metrics=METRICS + "  - name: errors\n    kind: series\n    query: x{ {{ selector }} }\n"
        ),
        [("metrics[1].name", 7, ("duplicate metric name 'errors'", "metrics[0]", "its own name"))],
        id="duplicate-names",
    ),
    pytest.param(
        doc(
            metrics=METRICS
            + "  - name: errors\n    kind: series\n    query: x{ {{ selector }} }\n"
            + "    tolerence: 0.2\n"
        ),
        [
            ("metrics[1].name", 7, ("duplicate metric name 'errors'",)),
            ("metrics[1].tolerence", 10, ("did you mean tolerance?",)),
        ],
        id="duplicate-names-with-field-error",
    ),
    pytest.param(
        doc(
            metrics=with_metric("    tolerance: lots\n"),
            strategy=canary("set_weight: 50", "set_weight: 20"),
            tail="traffic:\n  router: istio\n",
        ),
        [
            ("metrics[0].tolerance", 7, ("found the text 'lots'",)),
            ("strategy.steps", 10, ("never reach 100%",)),
            ("strategy.steps[1].set_weight", 12, ("weight goes down from 50 to 20",)),
            ("traffic.router", 14, ("unknown router 'istio'",)),
        ],
        id="several-at-once",
    ),
    pytest.param(
        doc(metrics=with_metric("    weight: 50\n    weight: 60\n    critical: maybe\n")),
        [
            ("metrics[0].weight", 8, ("duplicate key 'weight'",)),
            ("metrics[0].critical", 9, ("expected true or false",)),
        ],
        id="duplicate-yaml-key-and-field-error",
    ),
    pytest.param(
        doc(metrics="metrics: []\n"),
        [("metrics", 2, ("at least 1 item", "found none"))],
        id="empty-metrics",
    ),
    pytest.param(
        doc(metrics="metrics:\n  - name: up\n    kind: series\n    query: avg(up)\n"),
        [("metrics[0].query", 5, ("never uses {{ selector }}",))],
        id="no-selector",
    ),
    pytest.param(
        doc(tail="analysis:\n  - interval: 1m\n"),
        [
            (
                "analysis",
                13,
                ("expected a mapping such as `analysis: {interval: 1m}`", "found a list"),
            )
        ],
        id="analysis-a-list",
    ),
    pytest.param(
        doc(strategy=canary("pause: [5m]", "set_weight: 100")),
        [
            (
                "strategy.steps[0].pause",
                10,
                ("expected a mapping such as `pause: {duration: 5m}", "pause: 5m", "found a list"),
            )
        ],
        id="pause-a-list",
    ),
    pytest.param(
        doc(
            strategy="strategy:\n  type: targeted\n  match:\n"
            "    - header: {name: x canary, value: '1'}\n"
            "  analyze: 5m\n  steps:\n    - set_weight: 100\n",
            tail="traffic:\n  router: gateway_api\n",
        ),
        [
            (
                "strategy.match[0].header.name",
                10,
                ("a header or cookie name has no spaces", "found the text 'x canary'"),
            )
        ],
        id="header-name-space",
    ),
    pytest.param(
        doc(
            metrics="metrics:\n  - name: errors\n    kind: series\n"
            "    errors: e{ {{ selector }} }\n"
        ),
        [
            ("metrics[0].query", 3, ("missing required field query",)),
            ("metrics[0].errors", 5, ("kind series has no errors", "a field of kind counts")),
        ],
        id="counts-query-under-series",
    ),
    pytest.param(
        doc(strategy="strategy:\n  type: canary\n  batches:\n    - percent: 100\n"),
        [
            ("strategy.steps", 7, ("missing required field steps", "- set_weight: 10")),
            ("strategy.batches", 9, ("type canary has no batches", "a field of type rolling")),
        ],
        id="batches-under-canary",
    ),
    pytest.param(
        doc(
            metrics=with_metric("    tolerance: lots\n")
            + "  - name: latency\n    kind: series\n"
            + '    query: l{ {{ selector }}, route="{{ path }}" }\n'
        ),
        [
            ("metrics[0].tolerance", 7, ("found the text 'lots'",)),
            ("metrics[1].query", 10, ("undefined variable {{ path }}", "declare job arguments")),
        ],
        id="template-of-a-valid-metric-beside-a-bad-one",
    ),
    pytest.param(
        doc(tail="alerts: https://alertmanager:9093\n"),
        [("alerts", 13, ("alert routes are names", "not URLs", "`alerts: [oncall]`"))],
        id="alerts-one-url",
    ),
    pytest.param(
        doc(
            strategy="strategy:\n  type: targeted\n  match:\n    - region: south korea\n"
            "  analyze: 5m\n  steps:\n    - set_weight: 100\n",
            tail="analysis:\n  pod_label: 1pod\n",
        ),
        [
            (
                "strategy.match[0].region",
                10,
                ("a region is letters", "found the text 'south korea'"),
            ),
            ("analysis.pod_label", 15, ("a Prometheus label name", "found the text '1pod'")),
        ],
        id="region-and-label-in-words",
    ),
    pytest.param(
        doc(
            metrics="metrics:\n  - name: latency\n    kind: histogram\n"
            "    buckets: sum by (le) (b{ {{ selector }} })\n"
            "    judge: {type: sequential, name: strict}\n"
        ),
        [("metrics[0].judge.name", 6, ("the fields here are type, early_pass, min_events",))],
        id="a-metric-field-inside-its-judge",
    ),
    pytest.param(
        "name: broken\nanalysis:\n  interval: soon\n",
        [
            ("metrics", 1, ("missing required field metrics", "- {name: error-ratio")),
            ("strategy", 1, ("missing required field strategy", "type: canary")),
            ("analysis.interval", 3, ("bad duration 'soon'",)),
        ],
        id="only-a-name-and-a-bad-interval",
    ),
    pytest.param(
        doc(tail="analysis:\n  interval:1m\n"),
        [("analysis", 13, ("a colon needs a space after it", "write `interval: 1m`"))],
        id="no-space-after-a-colon",
    ),
    pytest.param(
        doc(
            metrics=with_metric("    tolerance: lots\n")
            + "  - name: latency\n    kind: series\n"
            + "    query: sum(rate(l{ {{ selector }} }[1m])\n",
            tail="traffic:\n  router: istio\n",
        ),
        [
            ("metrics[0].tolerance", 7, ("found the text 'lots'",)),
            ("metrics[1].query", 10, ("PromQL does not parse", "unclosed left parenthesis")),
            ("traffic.router", 18, ("unknown router 'istio'",)),
        ],
        id="promql-of-a-valid-metric-beside-a-bad-one",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_mistake_gets_the_problems_that_name_its_fix(
    text: str, expected: list[tuple[str, int, tuple[str, ...]]]
) -> None:
    found = problems_of(text)
    assert [(p.dotted_path, p.line) for p in found] == [(path, line) for path, line, _ in expected]
    for problem, (_, _, words) in zip(found, expected, strict=True):
        for word in words:
            assert word in problem.message, problem.message


def test_there_are_at_least_40_mistakes() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("text", [text for text, _ in (case.values for case in CASES)])
def test_no_message_speaks_python_or_regex(text: str) -> None:
    for problem in problems_of(text):
        for word in ("Input should", "dictionary", "instance of", "Spec", "^[", "pydantic"):
            assert word not in problem.message, problem.message


def problems_of(text: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return caught.value.problems


def test_problems_are_sorted_by_line() -> None:
    text = doc(
        metrics=with_metric("    tolerance: lots\n"),
        strategy=canary("set_weight: 50"),
        tail="traffic:\n  router: istio\n",
    )
    lines = [problem.line or 0 for problem in problems_of(text)]
    assert lines == sorted(lines) and len(lines) == 3


def test_the_alert_setting_named_is_the_one_the_workers_read() -> None:
    assert ALERT_ROUTES_SETTING == ROUTES_VARIABLE


@pytest.mark.parametrize(
    "strategy",
    [
        STRATEGY,
        canary("set_weight: 10", "analyze: {duration: 10m}", "set_weight: 100"),
    ],
)
def test_analyze_is_written_as_its_duration_or_as_a_block(strategy: str) -> None:
    policy = load_policy_text(doc(strategy=strategy))
    step = policy.strategy.steps[1]  # type: ignore[union-attr]
    assert isinstance(step, AnalyzeStep) and step.analyze.duration.total_seconds() in (300, 600)


def test_every_place_that_analyses_takes_a_duration() -> None:
    targeted = load_policy_text(
        doc(
            strategy="strategy:\n  type: targeted\n  match:\n    - region: KR\n  analyze: 10m\n"
            "  steps:\n    - pause: 90s\n    - set_weight: 100\n",
            tail="traffic:\n  router: gateway_api\n",
        )
    ).strategy
    assert isinstance(targeted, TargetedStrategy)
    assert targeted.analyze.duration.total_seconds() == 600
    pause = targeted.steps[0]
    assert isinstance(pause, PauseStep) and pause.pause.duration is not None
    assert pause.pause.duration.total_seconds() == 90
    blue_green = load_policy_text(
        doc(
            strategy="strategy:\n  type: blue_green\n  analyze: 1h 30m\n"
            "  post_promotion_analyze: 5m\n"
        )
    ).strategy
    assert isinstance(blue_green, BlueGreenStrategy)
    assert blue_green.analyze is not None and blue_green.analyze.duration.total_seconds() == 5400
    assert blue_green.post_promotion_analyze is not None


def test_percentages_are_converted_to_each_fields_unit() -> None:
    policy = load_policy_text(
        doc(
            metrics=with_metric("    tolerance: 10%\n    weight: 100%\n"),
            strategy=canary("set_weight: 25%", "set_weight: 100"),
            tail="analysis:\n  alpha: 1%\n  pass_score: 90%\n  marginal_score: 70.5%\n",
        )
    )
    metric = policy.metrics[0]
    assert isinstance(metric, CountsMetric)
    assert metric.tolerance == pytest.approx(0.1) and metric.weight == 100
    assert policy.analysis.alpha == pytest.approx(0.01)
    assert (policy.analysis.pass_score, policy.analysis.marginal_score) == (90, 70.5)
    assert policy.strategy.steps[0].set_weight == 25  # type: ignore[union-attr]
    judged = load_policy_text(
        doc(metrics=SERIES + "    judge: {type: mann_whitney, confidence: 99%}\n")
    ).metrics[0]
    assert judged.judge.confidence == pytest.approx(0.99)  # type: ignore[union-attr]
