"""Strategies compile a policy's ``strategy:`` section into a flat plan of stages (see base.py).

``plan_for`` is the registry: it maps a strategy's ``type`` to its planner and raises on a type
it does not know, never falling back to another strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analyzer.policy.strategy import Strategy
from workers.strategies import bluegreen, canary, rolling, targeted
from workers.strategies.base import (
    Analyze,
    Exposure,
    Gate,
    Pause,
    Plan,
    Preview,
    RetireOld,
    Route,
    Scale,
    Stage,
    Switch,
    UnknownStrategyError,
    baseline_shift,
    exposure_after,
    required_after,
)

PLANNERS: dict[str, Callable[[Any], Plan]] = {
    "canary": canary.plan,
    "rolling": rolling.plan,
    "blue_green": bluegreen.plan,
    "targeted": targeted.plan,
}


def plan_for(strategy: Strategy) -> Plan:
    """The stages of a validated strategy; UnknownStrategyError for an unregistered type."""
    planner = PLANNERS.get(strategy.type)
    if planner is None:
        raise UnknownStrategyError(
            f"no planner for strategy type {strategy.type!r}; known: {', '.join(sorted(PLANNERS))}"
        )
    return planner(strategy)


__all__ = [
    "PLANNERS",
    "Analyze",
    "Exposure",
    "Gate",
    "Pause",
    "Plan",
    "Preview",
    "RetireOld",
    "Route",
    "Scale",
    "Stage",
    "Switch",
    "UnknownStrategyError",
    "baseline_shift",
    "exposure_after",
    "plan_for",
    "required_after",
]
