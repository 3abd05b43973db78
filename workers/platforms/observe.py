"""The observe platform: analysis only, for teams whose deploy tool moves traffic itself.

Canarist judges the new version against the old one and decides, but changes nothing: every
action is accepted and ignored, and every change is "ready" at once. A promote or abort decision
still reaches people through the alert routes (and the API), and the team's deploy tool acts on
it. The weights of the policy's steps then only pace the analysis.
"""

from __future__ import annotations

from collections.abc import Sequence

from workers.actions import PlatformAction
from workers.platforms.base import Readiness, Ready
from workers.state import RolloutState


class ObservePlatform:
    """Touches nothing; always ready."""

    name = "observe"

    def apply(self, rollout: RolloutState, action: PlatformAction) -> None:
        return None

    def readiness(self, rollout: RolloutState, wants: Sequence[PlatformAction]) -> Readiness:
        return Ready()
