"""Targeted canary: a chosen audience first (header, cookie or region), then weight steps.

The audience is routed to the new version at weight 0 and analysed for ``analyze.duration``
before anyone else sees it. It stays on the new version through the weight steps that follow, so
a tester's session does not flip between versions as the weight grows. A region is matched on the
request header named by ``region_header``: routers only need header and cookie matches.
"""

from __future__ import annotations

from analyzer.policy.strategy import MatchRule, TargetedStrategy
from analyzer.policy.traffic import router_match
from workers.actions import Match
from workers.strategies.base import Analyze, Plan, Shift
from workers.strategies.canary import steps_plan


def plan(strategy: TargetedStrategy) -> Plan:
    audience = tuple(match(rule, strategy.region_header) for rule in strategy.match)
    analyze = strategy.analyze
    first = (Shift(0, audience), Analyze(analyze.duration.total_seconds(), analyze.load))
    return first + steps_plan(strategy.steps, audience)


def match(rule: MatchRule, region_header: str) -> Match:
    """One policy match rule as a router match (the policy's checks read the same conversion)."""
    routed = router_match(rule, region_header)
    return Match(routed.kind, routed.name, routed.value, regex=routed.regex)
