"""Stage labels for answers: the policy's plan names the stage a rollout is at.

The state keeps only ``stage_index``; the label ("25% for 10m", "analysis 5m") comes from the
policy's compiled plan. Plans are cached per policy file and reloaded when the file changes. A
policy that no longer loads leaves the label unknown (null) rather than failing the request:
the answer is about the rollout, not the policy.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from analyzer.errors import CanaristError
from analyzer.policy import load_policy
from workers.state import RolloutState
from workers.strategies import Plan, plan_for

log = logging.getLogger("canarist.api")
POLICY_SUFFIXES = (".yaml", ".yml")


class PlanLabels:
    """``labels(state) -> (stage label or None, number of stages or None)``."""

    def __init__(self, policy_dir: Path) -> None:
        self._policy_dir = policy_dir
        self._lock = threading.Lock()
        self._plans: dict[str, tuple[int, Plan | None]] = {}

    def __call__(self, state: RolloutState) -> tuple[str | None, int | None]:
        plan = self._plan(state.policy)
        if plan is None:
            return None, None
        index = state.stage_index
        return (plan[index].label if index < len(plan) else None), len(plan)

    def _plan(self, name: str) -> Plan | None:
        path = self._path(name)
        if path is None:
            return None
        try:
            changed = path.stat().st_mtime_ns
        except OSError:
            return None
        with self._lock:
            cached = self._plans.get(name)
            if cached is not None and cached[0] == changed:
                return cached[1]
        plan: Plan | None
        try:
            plan = plan_for(load_policy(path).strategy)
        except CanaristError as exc:
            log.warning("policy %s does not load, stage labels unknown: %s", name, exc)
            plan = None
        with self._lock:
            self._plans[name] = (changed, plan)
        return plan

    def _path(self, name: str) -> Path | None:
        if "/" in name or "\\" in name or name.startswith("."):
            return None
        for suffix in POLICY_SUFFIXES:
            path = self._policy_dir / f"{name}{suffix}"
            if path.is_file():
                return path
        return None
