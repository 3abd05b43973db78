"""Rolling: cumulative batches of replicas move to the new version, analysed between batches.

Without a traffic router, traffic follows the replica count, so every batch lets users reach the
new version and background analysis watches it; a batch's ``analyze`` holds the roll-out there
until the analysis passes.
"""

from __future__ import annotations

from analyzer.policy.strategy import RollingStrategy
from workers.strategies.base import Analyze, Plan, Scale, Stage


def plan(strategy: RollingStrategy) -> Plan:
    stages: list[Stage] = []
    for batch in strategy.batches:
        stages.append(Scale(batch.percent, batch.replicas))
        if batch.analyze is not None:
            stages.append(Analyze(batch.analyze.total_seconds()))
    return tuple(stages)
