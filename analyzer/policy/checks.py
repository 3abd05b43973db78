"""Checks that span fields: what a schema cannot say but an SRE would get wrong.

Each check returns Problems located at the field to fix, so the loader can name file, line and
field. They run inside ``Policy`` validation, so a policy built in code is held to them too.
They take the policy's sections, not the ``Policy`` built from them, so models.py imports this
module and never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from datetime import timedelta
from itertools import pairwise

from analyzer.errors import PolicyProblem
from analyzer.policy.durations import format_duration
from analyzer.policy.metrics import MetricBase
from analyzer.policy.promql import BUILTIN_VARIABLES, PromQLTemplate
from analyzer.policy.promql_check import query_problems
from analyzer.policy.strategy import (
    AnalyzeStep,
    BlueGreenStrategy,
    CanaryStrategy,
    RollingStrategy,
    SetWeightStep,
    Step,
    Strategy,
    TargetedStrategy,
)
from analyzer.policy.traffic import (
    ROUTER_LIMITS,
    Router,
    TrafficSpec,
    audience_refusals,
    router_match,
    sticky_refusal,
)

FRESH_BASELINE_MAX_WEIGHT = 50  # a fresh baseline's share equals the canary's: 2 x 50 = 100


def policy_problems(
    *,
    arg_names: Set[str],
    interval: timedelta,
    metrics: Sequence[MetricBase],
    strategy: Strategy,
    traffic: TrafficSpec,
    baseline: str = "stable",
    arg_defaults: Mapping[str, str | None] | None = None,
) -> list[PolicyProblem]:
    """Every cross-field problem of a policy with these sections: its job arguments' names (and
    defaults), its ``analysis.interval``, its metrics, its strategy and its traffic section."""
    defaults = arg_defaults if arg_defaults is not None else dict.fromkeys(arg_names)
    return [
        *metric_problems(metrics, defaults, interval),
        *strategy_problems(strategy, interval),
        *traffic_problems(strategy, traffic, baseline),
    ]


def metric_problems(
    metrics: Sequence[MetricBase], arg_defaults: Mapping[str, str | None], interval: timedelta
) -> list[PolicyProblem]:
    """The problems among the metrics, which need only the metrics, the args and the analysis
    sections to be valid: the loader runs these even when the strategy has problems of its own,
    to report all at once."""
    return [
        *duplicate_metric_names([metric.name for metric in metrics]),
        *template_problems(metrics, arg_defaults, interval),
        *_weights(metrics),
        *_nothing_counts(metrics),
    ]


def strategy_problems(strategy: Strategy, interval: timedelta) -> list[PolicyProblem]:
    """The problems of how the release moves, which need only the strategy and the analysis
    sections to be valid (the loader runs these even when a metric or the traffic has problems)."""
    return list(_strategy(strategy, interval))


def traffic_problems(
    strategy: Strategy, traffic: TrafficSpec, baseline: str = "stable"
) -> list[PolicyProblem]:
    """What the strategy asks of the router, which needs the strategy, the traffic and the
    analysis sections to be valid: the audience against the router's limits (what the router
    would refuse at run time, said at the line instead)."""
    return [
        *_traffic(strategy, traffic),
        *(_fresh_baseline(strategy, traffic) if baseline == "fresh" else ()),
        *_audience(strategy, traffic),
        *_sticky(strategy, traffic),
    ]


def _sticky(strategy: Strategy, traffic: TrafficSpec) -> Iterator[PolicyProblem]:
    """A sticky split needs weight steps to keep users through, and a router that can key a
    split on a user. As with an audience, only a router the policy names is refused here: the
    local platform keys its own NGINX on any sticky form, and intake refuses the rest."""
    if traffic.sticky is None:
        return
    if isinstance(strategy, RollingStrategy | BlueGreenStrategy):
        yield PolicyProblem(
            ("traffic", "sticky"),
            f"sticky keeps users through a weighted split, and strategy {strategy.type} has "
            "none (rolling batches share one pool, blue-green switches everyone at once): "
            "drop sticky, or use strategy canary or targeted",
        )
        return
    named = "router" in traffic.model_fields_set
    refusal = sticky_refusal(traffic.router, traffic.sticky.key()) if named else None
    if refusal is not None:
        yield PolicyProblem(("traffic", "sticky"), refusal)


def _audience(strategy: Strategy, traffic: TrafficSpec) -> Iterator[PolicyProblem]:
    """A targeted audience the named router cannot route, at the rule (a router that routes no
    audience at all is said once, at traffic.router, by ``_traffic``)."""
    if (
        not isinstance(strategy, TargetedStrategy)
        or not ROUTER_LIMITS[traffic.router].routes_audience
    ):
        return
    audience = [router_match(rule, strategy.region_header) for rule in strategy.match]
    for refusal in audience_refusals(traffic.router, audience):
        rule = strategy.match[refusal.index]
        kind = (
            "header"
            if rule.header is not None
            else "cookie"
            if rule.cookie is not None
            else "region"
        )
        path: tuple[str | int, ...] = ("strategy", "match", refusal.index, kind)
        yield PolicyProblem((*path, "value") if refusal.of_value else path, refusal.message)


def _fresh_baseline(strategy: Strategy, traffic: TrafficSpec) -> Iterator[PolicyProblem]:
    """A fresh baseline takes the canary's share of random requests from the stable, so it needs
    weight steps (a canary strategy), analysis at weights up to 50, and a router that can send
    requests three ways (ingress-nginx allows one canary Ingress per host)."""
    if not isinstance(strategy, CanaryStrategy):
        why = (
            "a targeted audience is not a random share of requests, so no baseline can get the "
            "same one"
            if isinstance(strategy, TargetedStrategy)
            else "only weight steps give a fresh baseline the canary's share of requests"
        )
        yield PolicyProblem(
            ("analysis", "baseline"),
            f"fresh needs strategy type canary, not {strategy.type}: {why}; use baseline: stable",
        )
        return
    if traffic.router == Router.NGINX_INGRESS:
        yield PolicyProblem(
            ("analysis", "baseline"),
            "fresh needs a three-way split, and ingress-nginx allows only one canary Ingress per "
            "host: use traffic.router gateway_api or replicas, or baseline: stable",
        )
    weight = 0
    for index, step in enumerate(strategy.steps):
        if isinstance(step, SetWeightStep):
            weight = step.set_weight
        elif isinstance(step, AnalyzeStep) and weight > FRESH_BASELINE_MAX_WEIGHT:
            yield PolicyProblem(
                ("strategy", "steps", index, "analyze"),
                f"analysis at weight {weight} with a fresh baseline: the baseline takes as much "
                f"traffic as the canary, so the two are compared at {FRESH_BASELINE_MAX_WEIGHT}% "
                "at most; analyse before the weight passes 50",
            )


def duplicate_metric_names(names: Sequence[object]) -> list[PolicyProblem]:
    """Each metric's name by position; the loader also gives it the names as written when some
    metric is invalid (a name that is not text is skipped), so duplicates are never hidden."""
    seen: dict[str, int] = {}
    problems = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(
                PolicyProblem(
                    ("metrics", index, "name"),
                    f"duplicate metric name {name!r} (first used by metrics[{seen[name]}]): "
                    "give each metric its own name",
                )
            )
        seen.setdefault(name, index)
    return problems


def template_problems(
    metrics: Sequence[MetricBase], arg_defaults: Mapping[str, str | None], interval: timedelta
) -> list[PolicyProblem]:
    """Each metric's own template problems: undefined variables, and each query parsed as PromQL
    (promql_check.py: what Prometheus would refuse at run time, said at the line instead). The
    loader also runs these on each valid metric when another is invalid: a metric at a time."""
    return [
        *_undefined_template_variables(metrics, set(arg_defaults)),
        *query_problems(metrics, arg_defaults, interval),
    ]


def _undefined_template_variables(
    metrics: Sequence[MetricBase], arg_names: Set[str]
) -> Iterator[PolicyProblem]:
    known = BUILTIN_VARIABLES | arg_names
    for index, metric in enumerate(metrics):
        for field, text in metric.templates().items():
            variables = PromQLTemplate.parse(text).variables
            for name in sorted(variables - known):
                yield PolicyProblem(
                    ("metrics", index, field),
                    f"template uses undefined variable {{{{ {name} }}}}; known: "
                    f"{', '.join(sorted(known))} (declare job arguments under args:)",
                )
            if "selector" not in variables:
                yield PolicyProblem(
                    ("metrics", index, field),
                    "template never uses {{ selector }}, so it cannot tell the versions apart",
                )


def _weights(metrics: Sequence[MetricBase]) -> Iterator[PolicyProblem]:
    counted = [(index, m) for index, m in enumerate(metrics) if not m.dry_run]
    weighted = [(index, m) for index, m in counted if m.weight is not None]
    if not weighted:
        return
    for index, metric in counted:
        if metric.weight is None:
            yield PolicyProblem(
                ("metrics", index, "weight"),
                f"metric {metric.name!r} has no weight while others do: give every metric one",
            )
    total = sum(m.weight or 0.0 for _, m in weighted)
    if len(weighted) == len(counted) and abs(total - 100.0) > 1e-6:
        yield PolicyProblem(
            ("metrics",),
            f"metric weights add up to {total:g}, not 100 (dry_run metrics do not count)",
        )


def _nothing_counts(metrics: Sequence[MetricBase]) -> Iterator[PolicyProblem]:
    if metrics and all(metric.dry_run for metric in metrics):
        yield PolicyProblem(
            ("metrics",), "every metric is dry_run, so no analysis could ever abort"
        )


def _strategy(strategy: Strategy, interval: timedelta) -> Iterator[PolicyProblem]:
    if isinstance(strategy, CanaryStrategy | TargetedStrategy):
        yield from _weight_steps(strategy.steps)
        for index, step in enumerate(strategy.steps):
            if isinstance(step, AnalyzeStep) and step.analyze.duration < interval:
                yield PolicyProblem(
                    ("strategy", "steps", index, "analyze", "duration"),
                    f"{format_duration(step.analyze.duration)} is shorter than one "
                    f"analysis.interval ({format_duration(interval)}): nothing would be measured",
                )
    if isinstance(strategy, RollingStrategy):
        yield from _batches(strategy)


def _weight_steps(steps: Sequence[Step]) -> Iterator[PolicyProblem]:
    weights = [(i, s.set_weight) for i, s in enumerate(steps) if isinstance(s, SetWeightStep)]
    for (_, before), (index, weight) in pairwise(weights):
        if weight < before:
            yield PolicyProblem(
                ("strategy", "steps", index, "set_weight"),
                f"weight goes down from {before} to {weight}: steps only move forward "
                "(an abort is what sends traffic back)",
            )
    if not weights or weights[-1][1] != 100:
        reached = weights[-1][1] if weights else 0
        yield PolicyProblem(
            ("strategy", "steps"),
            f"steps never reach 100% (the last set_weight is {reached}); end with set_weight: 100",
        )


def _batches(strategy: RollingStrategy) -> Iterator[PolicyProblem]:
    last = strategy.batches[-1]
    if last.percent != 100:
        yield PolicyProblem(
            ("strategy", "batches", len(strategy.batches) - 1),
            "the last batch must be percent: 100, so every replica ends on the new version",
        )
    for unit in ("percent", "replicas"):
        sizes = [
            (i, getattr(b, unit))
            for i, b in enumerate(strategy.batches)
            if getattr(b, unit) is not None
        ]
        for (_, before), (index, size) in pairwise(sizes):
            if size <= before:
                yield PolicyProblem(
                    ("strategy", "batches", index, unit),
                    f"batches are cumulative: {unit} {size} does not grow from {before}",
                )


def _traffic(strategy: Strategy, traffic: TrafficSpec) -> Iterator[PolicyProblem]:
    # Only a router the policy names is refused here: without one, a targeted policy still runs
    # on the local platform (its own NGINX) and on observe; intake refuses it on Kubernetes.
    named = "router" in traffic.model_fields_set
    if isinstance(strategy, TargetedStrategy) and named and traffic.router == Router.REPLICAS:
        yield PolicyProblem(
            ("traffic", "router"),
            "replicas cannot send a chosen audience to the canary; use gateway_api or "
            "nginx_ingress",
        )
    services = (traffic.stable_service, traffic.canary_service)
    if services[0] is not None and services[0] == services[1]:
        yield PolicyProblem(
            ("traffic", "canary_service"),
            f"the canary Service is the stable one ({services[0]}): the versions need one each",
        )
