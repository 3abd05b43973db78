"""Stage labels for answers: the policy's plan names the stage a rollout is at.

The state keeps only ``stage_index``; the label ("25% for 10m", "analysis 5m") comes from the
policy's compiled plan: the policy the rollout pinned at submit (intake's ``policy_for``: parsed
once per digest), or for a rollout from before pinning its file, read through intake's
``PolicyDir``. A policy that does not load leaves the label unknown (null) rather than failing
the request: the answer is about the rollout, not the policy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from analyzer.errors import CanaristError
from analyzer.policy import Policy
from workers.errors import UnknownPolicyError
from workers.state import RolloutState
from workers.strategies import Plan, plan_for

log = logging.getLogger("canarist.api")


class PlanLabels:
    """``labels(state) -> (stage label or None, number of stages or None)``."""

    def __init__(self, policy_for: Callable[[RolloutState], Policy]) -> None:
        self._policy_for = policy_for
        self._lock = threading.Lock()
        self._warned: dict[str, str] = {}  # policy name -> the last problem logged for it

    def __call__(self, state: RolloutState) -> tuple[str | None, int | None]:
        plan = self._plan(state)
        if plan is None:
            return None, None
        index = state.stage_index
        return (plan[index].label if index < len(plan) else None), len(plan)

    def _plan(self, state: RolloutState) -> Plan | None:
        name = state.policy
        try:
            return plan_for(self._policy_for(state).strategy)
        except (UnknownPolicyError, OSError):
            return None
        except CanaristError as exc:
            with self._lock:  # once per problem, not once per rollout of every list
                first = self._warned.get(name) != str(exc)
                self._warned[name] = str(exc)
            if first:
                log.warning("policy %s does not load, stage labels unknown: %s", name, exc)
            return None
