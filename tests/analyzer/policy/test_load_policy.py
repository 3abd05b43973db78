"""The ``load:`` block of an analysis step: accepted when bounded, refused at its line otherwise."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy_text
from analyzer.policy.load import MAX_TOTAL_REQUESTS, LoadSpec, parse_rate
from analyzer.policy.strategy import BlueGreenStrategy, CanaryStrategy, TargetedStrategy

HEAD = """\
name: preview
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }} }[{{ interval }}]))
    total: sum(increase(t{ {{ selector }} }[{{ interval }}]))
"""
BLUE_GREEN = """\
strategy:
  type: blue_green
  analyze:
    duration: 2m
    load:
"""


def blue_green(load: str) -> str:
    return HEAD + BLUE_GREEN + "".join(f"      {line}\n" for line in load.splitlines())


def refused(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "preview.yaml")
    return str(caught.value)


def test_a_bounded_load_is_read_with_its_defaults() -> None:
    policy = load_policy_text(
        blue_green(
            "rate: 20/s\nheaders: {x-synthetic: 'yes'}\n"
            "requests:\n  - {method: GET, path: /api/items}\n"
            "  - {method: POST, path: /api/cart, body: '{}', headers: {content-type: json}}"
        )
    )
    assert isinstance(policy.strategy, BlueGreenStrategy)
    analyze = policy.strategy.analyze
    assert analyze is not None and analyze.load is not None
    load = analyze.load
    assert (load.rate, load.duration, load.headers) == (20.0, None, {"x-synthetic": "yes"})
    assert [(r.method, r.path) for r in load.requests] == [
        ("GET", "/api/items"), ("POST", "/api/cart")
    ]  # fmt: skip
    step = timedelta(minutes=2)
    assert (load.seconds(step), load.total(step)) == (120.0, 2400)  # the step's window, 20/s


def test_a_load_names_a_recorded_sample_and_caps_its_count() -> None:
    policy = load_policy_text(
        blue_green("rate: 600/m\nduration: 1m\nrequests: checkout.txt\nmax_requests: 100")
    )
    assert isinstance(policy.strategy, BlueGreenStrategy) and policy.strategy.analyze
    load = policy.strategy.analyze.load
    assert load is not None and load.requests == "checkout.txt"
    assert (load.rate, load.total(timedelta(minutes=2))) == (10.0, 100)


@pytest.mark.parametrize(
    ("load", "where", "words"),
    [
        ("duration: 1m", "preview.yaml:11: strategy.analyze.load.rate",
         "missing required field rate"),
        ("rate: 500/s", "preview.yaml:12: strategy.analyze.load.rate", "above the limit of 200/s"),
        ("rate: 0", "preview.yaml:12: strategy.analyze.load.rate", "sends nothing"),
        ("rate: fast", "preview.yaml:12: strategy.analyze.load.rate", "expected e.g. 20/s"),
        ("rate: 20/s\nduration: 5m", "preview.yaml:9: strategy.analyze",
         "longer than the analysis step (2m)"),
        ("rate: 10/s\nmax_requests: 1000000", "preview.yaml:13: strategy.analyze.load.max_requests",
         f"at most {MAX_TOTAL_REQUESTS}"),
        ("rate: 10/s\nrequests: [{path: nope}]",
         "preview.yaml:13: strategy.analyze.load.requests[0].path",
         "not a path: write one starting with /"),
        ("rate: 10/s\nspeed: 3", "preview.yaml:13: strategy.analyze.load.speed", "speed"),
    ],
    ids=["no-rate", "rate-too-high", "rate-zero", "rate-unreadable", "longer-than-step",
         "count-over-cap", "bad-path", "unknown-field"],
)  # fmt: skip
def test_an_unbounded_or_excessive_load_is_refused_at_its_line(
    load: str, where: str, words: str
) -> None:
    message = refused(blue_green(load))
    assert where in message and words in message, message


def test_a_load_over_the_total_cap_without_max_requests_is_refused() -> None:
    text = HEAD + "strategy:\n  type: blue_green\n  analyze: {duration: 10m, load: {rate: 200/s}}\n"
    message = refused(text)
    assert "preview.yaml:9: strategy.analyze" in message, message
    assert "120000 requests" in message and "set max_requests" in message, message
    text = text.replace("rate: 200/s}", "rate: 200/s, max_requests: 50000}")
    assert load_policy_text(text).strategy.type == "blue_green"


def test_load_only_where_users_do_not_reach_the_new_version() -> None:
    canary = HEAD + (
        "strategy:\n  type: canary\n  steps:\n"
        "    - analyze: {duration: 1m, load: {rate: 5/s}}\n"  # weight 0: allowed
        "    - set_weight: 10\n"
        "    - analyze: {duration: 1m, load: {rate: 5/s}}\n"
        "    - set_weight: 100\n"
    )
    message = refused(canary)
    assert "strategy.canary" in message and "steps[2].analyze.load" in message, message
    assert "already takes 10% of users" in message, message
    allowed = load_policy_text(
        canary.replace(
            "- analyze: {duration: 1m, load: {rate: 5/s}}\n    - set_weight: 100",
            "- set_weight: 100",
        )
    )
    assert isinstance(allowed.strategy, CanaryStrategy)

    post = HEAD + (
        "strategy:\n  type: blue_green\n  analyze: 1m\n"
        "  post_promotion_analyze: {duration: 1m, load: {rate: 5/s}}\n"
    )
    assert "synthetic load belongs on the preview" in refused(post)

    targeted = HEAD + (
        "strategy:\n  type: targeted\n  match: [{header: {name: x-beta, value: 'on'}}]\n"
        "  analyze: {duration: 1m, load: {rate: 5/s, headers: {x-beta: 'on'}}}\n"
        "  steps: [{set_weight: 50}, {analyze: 1m}, {set_weight: 100}]\n"
    )
    strategy = load_policy_text(targeted).strategy
    assert isinstance(strategy, TargetedStrategy) and strategy.analyze.load is not None


def test_rates_are_read_per_second_or_per_minute() -> None:
    assert (parse_rate("20/s"), parse_rate("600/m"), parse_rate(" 3 / sec "), parse_rate(7)) == (
        20.0, 10.0, 3.0, 7.0,
    )  # fmt: skip
    assert LoadSpec(rate=1).total(timedelta(seconds=0.1)) == 1  # never a load of nothing
