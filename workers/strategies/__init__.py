"""Strategies compile a policy's ``strategy:`` section into a flat plan of stages (see base.py).

``PLANNERS`` is the registry, keyed on the policy's ``StrategyType``: ``plan_for`` maps a
strategy's ``type`` to its planner and raises on a type it does not know, never falling back to
another strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analyzer.policy.strategy import Strategy, StrategyType
from analyzer.registry import Registry
from workers.strategies import bluegreen, canary, rolling, targeted
from workers.strategies.base import (
    Analyze,
    Exposure,
    Gate,
    Pause,
    Plan,
    Preview,
    RetireOld,
    Scale,
    Shift,
    Stage,
    Switch,
    UnknownStrategyError,
    baseline_shift,
    exposure_after,
    required_after,
)

PLANNERS: Registry[StrategyType, Callable[[Any], Plan]] = Registry(
    "strategy type",
    {
        StrategyType.CANARY: canary.plan,
        StrategyType.ROLLING: rolling.plan,
        StrategyType.BLUE_GREEN: bluegreen.plan,
        StrategyType.TARGETED: targeted.plan,
    },
    UnknownStrategyError,
)


def plan_for(strategy: Strategy) -> Plan:
    """The stages of a validated strategy; UnknownStrategyError for an unregistered type."""
    return PLANNERS[strategy.type](strategy)


__all__ = [
    "PLANNERS",
    "Analyze",
    "Exposure",
    "Gate",
    "Pause",
    "Plan",
    "Preview",
    "RetireOld",
    "Scale",
    "Shift",
    "Stage",
    "Switch",
    "UnknownStrategyError",
    "baseline_shift",
    "exposure_after",
    "plan_for",
    "required_after",
]
