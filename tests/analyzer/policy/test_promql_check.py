"""Every query is parsed as PromQL when the policy loads: a mistake is named at its file, line and
field in the policy's words, never first seen as an HTTP 400 at the first look."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy_text
from analyzer.policy.promql_check import STAND_IN_SELECTOR, render_for_check, template_problem

ROOT = Path(__file__).parents[3]
HEAD = """\
name: p
args:
  - name: quantile
  - name: window
  - name: route
    default: ".*"
analysis:
  interval: 2m
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }} }[{{ interval }}]))
    total: sum(increase(t{ {{ selector }} }[{{ interval }}]))
"""
TAIL = "strategy: {type: canary, steps: [{set_weight: 100}]}\n"
QUERY_LINE = 16  # the line of the field written by ``metric`` below


def metric(kind: str, field: str, query: str, extra: str = "") -> str:
    quoted = "'" + query.replace("'", "''") + "'"
    text = HEAD + f"  - name: m\n    kind: {kind}\n    {field}: {quoted}\n{extra}" + TAIL
    assert text.splitlines()[QUERY_LINE - 1].startswith(f"    {field}:")
    return text


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [problem.render("p.yaml") for problem in caught.value.problems]


def only_problem(text: str, field: str = "query") -> str:
    found = problems(text)
    assert len(found) == 1, found
    prefix = f"p.yaml:{QUERY_LINE}: metrics[1].{field}: "
    assert found[0].startswith(prefix), found
    return found[0].removeprefix(prefix)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (
            "sum(rate(x{ {{ selector }} }[{{ interval }}])",
            "PromQL does not parse: unclosed left parenthesis at column 4 of the rendered query "
            "(up to it: ...'sum(')",
        ),
        (
            "sum(rate(x{ {{ selector }} }[{{ interval }}])))",
            "PromQL does not parse: unexpected right parenthesis ')' at column 54 of the "
            "rendered query",
        ),
        (
            'sum(x{ {{ selector }}, code=~"5.." )',
            "PromQL does not parse: ",
        ),
        ("x{ {{ selector }}, code=5 }", "unexpected character inside braces: '5'"),
        ("sum(x{ {{ selector }} }) +", "PromQL does not parse: invalid promql query"),
        ("rate(x{ {{ selector }} }[5q])", "bad number or duration syntax: 5q"),
        ("rate(x{ {{ selector }} })", "rate() takes a range vector: write rate(metric{...}["),
        ("sumrate(x{ {{ selector }} }[1m])", "PromQL does not parse: unknown function 'sumrate'"),
        (
            "histogram_quantil(0.9, sum by (le) (x{ {{ selector }} }))",
            "unknown function 'histogram_quantil'; did you mean histogram_quantile?",
        ),
        ("rate(x{ {{ selector }} }[5m])[1m]", "a range [...] may only follow a metric selector"),
    ],
)
def test_a_query_that_does_not_parse_is_refused_at_its_line(query: str, says: str) -> None:
    assert says in only_problem(metric("series", "query", query))


def test_a_bracket_out_of_place_is_pointed_at_in_the_rendered_query() -> None:
    message = only_problem(metric("series", "query", "sum(x{ {{ selector }} )"))
    assert message == (
        "PromQL does not parse: unexpected character inside braces: ')' at column 42 of the "
        'rendered query (up to it: ...\'st-check",version="v1" )\')'
    )


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("x{ {{ selector }} }[{{ interval }}]", "returns a range vector"),
        ("rate(x{ {{ selector }} }[1m])[{{ interval }}:]", "returns a range vector"),
        ("scalar(sum(x{ {{ selector }} }))", "returns a scalar"),
    ],
)
def test_a_query_that_returns_no_instant_vector_is_refused(query: str, says: str) -> None:
    message = only_problem(metric("series", "query", query))
    assert message.startswith(says)
    assert "e.g." in message  # and what to write instead


@pytest.mark.parametrize(
    "query",
    [
        "sum(rate(x_bucket{ {{ selector }} }[{{ interval }}]))",
        "sum by (pod) (rate(x_bucket{ {{ selector }} }[{{ interval }}]))",
        "sum without (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}]))",
        "max(sum by (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}])))",
        # one-to-one matching on(...) keeps only the labels it names
        "sum by (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}]))"
        " / on(pod) sum by (pod) (y{ {{ selector }} })",
        "sum by (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}]))"
        " / ignoring(le) sum(y{ {{ selector }} })",
    ],
)
def test_histogram_buckets_that_drop_le_are_refused(query: str) -> None:
    message = only_problem(metric("histogram", "buckets", query), "buckets")
    assert message == (
        "drops the le label, so no quantile can be computed: write sum by (le) (...) "
        "(or sum by (le, pod) (...) to judge pods one by one)"
    )


def test_histogram_buckets_given_as_a_quantile_say_so() -> None:
    query = (
        "histogram_quantile(0.99, sum by (le) (rate(x_bucket{ {{ selector }} }[{{ interval }}])))"
    )
    message = only_problem(metric("histogram", "buckets", query), "buckets")
    assert message.startswith("computes a quantile with histogram_quantile()")
    assert "use kind: series for the quantile" in message


@pytest.mark.parametrize(
    "query",
    [
        "sum by (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}]))",
        "sum by (le, pod) (increase(x_bucket{ {{ selector }} }[{{ interval }}]))",
        "sum without (pod) (increase(x_bucket{ {{ selector }} }[{{ interval }}]))",
        "increase(x_bucket{ {{ selector }} }[{{ interval }}])",
        "sum by (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}])) * 2",
        "topk(20, sum by (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}])))",
        "sum by (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}]))"
        " / on() group_left sum(y{ {{ selector }} })",
        # a label the query writes itself cannot be followed: it is let through
        'label_replace(sum(x_bucket{ {{ selector }} }), "le", "1", "", "")',
    ],
)
def test_histogram_buckets_that_keep_le_load(query: str) -> None:
    load_policy_text(metric("histogram", "buckets", query))


@pytest.mark.parametrize(
    "function",
    ["holt_winters", "double_exponential_smoothing"],  # Prometheus 2's name and Prometheus 3's
)
def test_a_smoothing_function_of_either_prometheus_loads(function: str) -> None:
    load_policy_text(
        metric("series", "query", f"{function}(x{{ {{{{ selector }}}} }}[1h], 0.5, 0.5)")
    )


def test_histogram_sum_and_count_are_checked_too() -> None:
    extra = "    buckets: sum by (le) (increase(b{ {{ selector }} }[{{ interval }}]))\n"
    extra += "    count: sum(increase(c{ {{ selector }} }[{{ interval }}]))\n"
    text = metric("histogram", "sum", "sum(increase(s{ {{ selector }} }[{{ interval }}])", extra)
    found = problems(text)
    assert found == [
        f"p.yaml:{QUERY_LINE}: metrics[1].sum: PromQL does not parse: unclosed left parenthesis "
        "at column 4 of the rendered query (up to it: ...'sum(')"
    ]


def test_every_field_of_every_metric_is_checked_at_once() -> None:
    text = HEAD.replace(
        "errors: sum(increase(e{ {{ selector }} }[{{ interval }}]))",
        "errors: sum(increase(e{ {{ selector }} }[{{ interval }}])",
    ) + ("  - name: m\n    kind: series\n    query: x{ {{ selector }} }[1m]\n" + TAIL)
    found = problems(text)
    assert [line.split(": ")[0:2] for line in found] == [
        ["p.yaml:12", "metrics[0].errors"],
        ["p.yaml:16", "metrics[1].query"],
    ]


def test_args_are_rendered_with_their_default_or_a_stand_in_for_their_place() -> None:
    text = (
        "histogram_quantile({{ quantile }}, sum by (le) "
        '(rate(x{ {{ selector }}, route=~"{{ route }}" }[{{ window }}] offset {{ window }})))'
    )
    rendered = render_for_check(
        text,
        {"quantile": None, "window": None, "route": ".*"},
        timedelta(minutes=2),
        STAND_IN_SELECTOR,
    )
    assert rendered == (
        'histogram_quantile(1, sum by (le) (rate(x{ app="canarist-check",version="v1", '
        'route=~".*" }[5m] offset 5m)))'
    )
    load_policy_text(metric("series", "query", text))


def test_an_arg_both_inside_and_outside_quotes_gets_a_stand_in_fit_for_both() -> None:
    text = 'max(x{ {{ selector }}, q="{{ quantile }}" }) > {{ quantile }}'
    assert render_for_check(text, {"quantile": None}, timedelta(minutes=1), STAND_IN_SELECTOR) == (
        'max(x{ app="canarist-check",version="v1", q="1" }) > 1'
    )
    load_policy_text(metric("series", "query", text))


def test_a_default_unfit_for_its_place_is_refused() -> None:
    text = HEAD.replace('default: ".*"', "default: five minutes")
    query = "max_over_time(x{ {{ selector }} }[{{ route }}])"
    message = only_problem(metric("series", "query", query).replace(HEAD, text))
    assert message.startswith("cannot be rendered with the args' defaults: route='five minutes'")


def test_an_undeclared_variable_is_said_once_by_the_template_check() -> None:
    found = problems(metric("series", "query", "max(x{ {{ selector }} }[{{ nope }}])"))
    assert len(found) == 1 and "undefined variable {{ nope }}" in found[0]


def test_template_problem_is_none_for_a_good_query() -> None:
    query = "sum by (le) (increase(x_bucket{ {{ selector }} }[{{ interval }}]))"
    assert template_problem(query, {}, timedelta(minutes=1), buckets=True) is None


def _documented_policies() -> list[tuple[str, str]]:
    """Every YAML policy in the README and docs/: a fenced block with metrics and a strategy."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        blocks = re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)
        for number, block in enumerate(blocks):
            if re.search(r"^metrics:", block, re.M) and re.search(r"^strategy:", block, re.M):
                found.append((f"{path.relative_to(ROOT)}#{number}", block))
    return found


def test_the_policies_in_the_readme_and_docs_load() -> None:
    documented = _documented_policies()
    assert any(name.startswith("README.md") for name, _ in documented)
    for name, text in documented:
        load_policy_text(text, name)
