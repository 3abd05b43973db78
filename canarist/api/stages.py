"""Stage labels for answers: the policy's plan names the stage a rollout is at.

The state keeps only ``stage_index``; the label ("25% for 10m", "analysis 5m") comes from the
policy's compiled plan, read through intake's ``PolicyDir`` (the one cache of policy files,
reloaded when a file changes). A policy that no longer loads leaves the label unknown (null)
rather than failing the request: the answer is about the rollout, not the policy.
"""

from __future__ import annotations

import logging
import threading

from analyzer.errors import CanaristError
from workers.errors import UnknownPolicyError
from workers.intake import PolicyDir
from workers.state import RolloutState
from workers.strategies import Plan, plan_for

log = logging.getLogger("canarist.api")


class PlanLabels:
    """``labels(state) -> (stage label or None, number of stages or None)``."""

    def __init__(self, policies: PolicyDir) -> None:
        self._policies = policies
        self._lock = threading.Lock()
        self._warned: dict[str, str] = {}  # policy name -> the last problem logged for it

    def __call__(self, state: RolloutState) -> tuple[str | None, int | None]:
        plan = self._plan(state.policy)
        if plan is None:
            return None, None
        index = state.stage_index
        return (plan[index].label if index < len(plan) else None), len(plan)

    def _plan(self, name: str) -> Plan | None:
        try:
            return plan_for(self._policies.load(name).strategy)
        except (UnknownPolicyError, OSError):
            return None
        except CanaristError as exc:
            with self._lock:  # once per problem, not once per rollout of every list
                first = self._warned.get(name) != str(exc)
                self._warned[name] = str(exc)
            if first:
                log.warning("policy %s does not load, stage labels unknown: %s", name, exc)
            return None
