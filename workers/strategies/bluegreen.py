"""Blue-green: a preview beside the active version, analysed, switched at once, old side kept.

The order follows Argo Rollouts' blue-green update: preview (no user traffic) -> pre-promotion
analysis -> a pause when auto-promotion is off (until a person promotes) or delayed
(``auto_promote_after``, which only applies when ``auto_promote`` is on) -> switch -> post-promotion
analysis -> keep the old side for ``scale_down_delay``, then scale it down. Until then an abort
switches the active service straight back to the old side, which is still warm.
"""

from __future__ import annotations

from analyzer.policy.strategy import BlueGreenStrategy
from workers.strategies.base import Analyze, Pause, Plan, Preview, RetireOld, Stage, Switch


def plan(strategy: BlueGreenStrategy) -> Plan:
    stages: list[Stage] = [Preview(strategy.preview_replicas)]
    if strategy.analyze is not None:
        analyze = strategy.analyze
        stages.append(Analyze(analyze.duration.total_seconds(), analyze.load))
    if not strategy.auto_promote:
        stages.append(Pause(None))
    elif strategy.auto_promote_after is not None:
        stages.append(Pause(strategy.auto_promote_after.total_seconds()))
    stages.append(Switch())
    if strategy.post_promotion_analyze is not None:
        stages.append(Analyze(strategy.post_promotion_analyze.duration.total_seconds()))
    stages.append(RetireOld(strategy.scale_down_delay.total_seconds()))
    return tuple(stages)
