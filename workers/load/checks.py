"""What intake checks of a policy's synthetic load at submit, beyond the policy's own bounds.

A load needs a platform that can address the new version alone (``LOAD_PLATFORMS``: the local
router's preview header, Kubernetes' preview Service), and a recorded sample it names must be in
the policy directory and readable, so a job is refused at submit rather than discovered at its
analysis step to have no traffic.
"""

from __future__ import annotations

from pathlib import Path

from analyzer.policy import Policy
from workers.load.sender import read_sample
from workers.strategies import Analyze, plan_for

LOAD_PLATFORMS = frozenset({"local", "kubernetes"})


def load_refusal(policy: Policy, platform: str, policy_dir: Path) -> str | None:
    """Why a job of ``policy`` on ``platform`` cannot send its load, or None."""
    loads = [s.load for s in plan_for(policy.strategy) if isinstance(s, Analyze) and s.load]
    if not loads:
        return None
    if platform not in LOAD_PLATFORMS:
        return (
            f"asks for synthetic load, which platform {platform} cannot address to the new "
            f"version alone (it can on {', '.join(sorted(LOAD_PLATFORMS))}): use one of those, "
            "or drop load: from the policy"
        )
    for load in loads:
        if isinstance(load.requests, str):
            try:
                read_sample(policy_dir / load.requests)
            except FileNotFoundError:
                return f"names the load sample {load.requests!r}, which is not in the policies"
            except (OSError, ValueError) as exc:
                return f"names a load sample that cannot be read: {exc}"
    return None
