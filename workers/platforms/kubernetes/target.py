"""Which objects one rollout works on, derived from its state once per call.

The job names the stable Deployment (``state.namespace``/``state.app``); everything else follows
from the spec the rollout was submitted with: the new version and image(s), the strategy type and
the policy's ``traffic:`` section (router, Service, HTTPRoute and Ingress names, version label),
all snapshotted at submit so a policy edit never moves a rollout in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzer.policy.strategy import StrategyType
from analyzer.policy.traffic import Router
from workers.platforms.kubernetes import desired as marks
from workers.spec import RolloutTraffic
from workers.state import RolloutState


@dataclass(frozen=True)
class Target:
    rollout: str
    attempt: int
    token: str | None
    namespace: str
    app: str  # the stable Deployment
    version: str  # the new version: the canary pods' version label value
    strategy: StrategyType
    traffic: RolloutTraffic  # names resolved for the app
    image: str  # the default container's new image ("" = unchanged)
    images: tuple[tuple[str, str], ...]  # (container, new image)
    fresh_baseline: bool = False  # analysis.baseline fresh: <app>-baseline runs beside the canary

    @classmethod
    def of(cls, rollout: RolloutState) -> Target:
        spec = rollout.spec
        return cls(
            rollout=rollout.id,
            attempt=rollout.attempt,
            token=rollout.awaiting,
            namespace=rollout.namespace,
            app=rollout.app,
            version=spec.version,
            strategy=spec.strategy,
            traffic=spec.traffic.resolved(rollout.app),
            image=spec.image,
            images=spec.images,
            fresh_baseline=spec.fresh_baseline,
        )

    @property
    def canary(self) -> str:
        """The canary Deployment's name."""
        return f"{self.app}-canary"

    @property
    def baseline(self) -> str:
        """The fresh baseline's Deployment and Service (fresh_baseline.py)."""
        return f"{self.app}-baseline"

    @property
    def label(self) -> str:
        """The version label key."""
        return self.traffic.version_label

    @property
    def blue_green(self) -> bool:
        """Blue-green switches the active Service between versions and uses no router."""
        return self.strategy == StrategyType.BLUE_GREEN

    @property
    def needs_services(self) -> bool:
        """Blue-green and the request routers need a Service per version; replicas do not."""
        return self.blue_green or self.traffic.router != Router.REPLICAS

    def stamp(self, desired: Any, owned: bool) -> dict[str, Any]:
        """Metadata marking an object as written by this attempt, with its desired state."""
        return marks.stamp(self.rollout, self.attempt, desired, owned)

    def describe(self) -> str:
        return f"{self.namespace}/{self.app} {self.version}"
