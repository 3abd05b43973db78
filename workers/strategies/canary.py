"""Canary: weight steps with timed or manual pauses and analysis windows, in the policy's order.

Each ``set_weight`` is a cumulative target (Argo Rollouts' ``setWeight``); ``pause: {}`` waits
for a person; ``analyze`` holds the weight while the analysis decides. Background analysis runs
beside every stage in which the canary takes traffic: the engine does that, not the plan.
"""

from __future__ import annotations

from analyzer.policy.strategy import AnalyzeStep, CanaryStrategy, PauseStep, SetWeightStep, Step
from workers.actions import Match
from workers.strategies.base import Analyze, Pause, Plan, Shift, Stage


def plan(strategy: CanaryStrategy) -> Plan:
    return steps_plan(strategy.steps)


def steps_plan(steps: list[Step], match: tuple[Match, ...] = ()) -> Plan:
    """The stages of a list of canary steps; ``match`` keeps an audience on the canary."""
    return tuple(_stage(step, match) for step in steps)


def _stage(step: Step, match: tuple[Match, ...]) -> Stage:
    if isinstance(step, SetWeightStep):
        return Shift(step.set_weight, match)
    if isinstance(step, PauseStep):
        duration = step.pause.duration
        return Pause(None if duration is None else duration.total_seconds())
    assert isinstance(step, AnalyzeStep)
    return Analyze(step.analyze.duration.total_seconds(), step.analyze.load)
