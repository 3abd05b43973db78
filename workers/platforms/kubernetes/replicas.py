"""The replicas router: no router at all; traffic follows replica counts behind one Service.

The stable Service selects the app's pods whatever their version, so the canary's share of the
pods is its share of the requests (kube-proxy spreads connections evenly). A weight becomes a
canary size beside the untouched stable Deployment: ceil(stable * w / (100 - w)) pods, capped at
the stable's size, so at most an even split is expressed before promotion (a rolling strategy
gets exact shares by shrinking the stable as the canary grows). It cannot send a chosen audience
to the canary, nor keep a user on one version (``traffic.sticky``); the policy check refuses
``targeted`` and ``sticky`` with this router, and so does set_traffic.
"""

from __future__ import annotations

from analyzer.policy.traffic import Router, audience_refusals, sticky_refusal
from workers.actions import Match
from workers.platforms.base import PlatformError, Readiness, Ready
from workers.platforms.kubernetes.api import SERVICES, Kube
from workers.platforms.kubernetes.desired import replicas_for_weight
from workers.platforms.kubernetes.services import selector_of
from workers.platforms.kubernetes.target import Target


class ReplicasRouter:
    name = Router.REPLICAS

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def check(self, target: Target, weight: int, match: tuple[Match, ...]) -> None:
        refusals = audience_refusals(Router.REPLICAS, match)  # the policy's checks say the same
        if refusals:
            raise PlatformError("; ".join(refusal.message for refusal in refusals))
        unsticky = sticky_refusal(Router.REPLICAS, target.traffic.sticky)  # and this too
        if unsticky is not None:
            raise PlatformError(f"traffic.sticky: {unsticky}")
        self._check_service(target)

    def set_traffic(self, target: Target, weight: int, match: tuple[Match, ...]) -> None:
        self.check(target, weight, match)

    def reset(self, target: Target) -> None:
        return None  # the canary's pods leave the Service as it scales to zero

    def verify(self, target: Target, weight: int, match: tuple[Match, ...]) -> Readiness:
        return Ready()  # the canary's size carries the weight: the workloads check it

    def canary_replicas(self, stable: int, weight: int, match: tuple[Match, ...]) -> int:
        return replicas_for_weight(stable, weight)

    def _check_service(self, target: Target) -> None:
        """A stable Service pinned to another version would never send the canary a request."""
        service = self.kube.get(SERVICES, target.namespace, target.traffic.stable_service)
        if service is None:
            return  # not every workload has a Service: nothing to check
        pinned = selector_of(service).get(target.label)
        if pinned is not None and pinned != target.version:
            raise PlatformError(
                f"Service {target.namespace}/{target.traffic.stable_service} selects only "
                f"{target.label}={pinned}, so the canary would get no traffic with router "
                f"replicas: drop {target.label} from its selector, or use gateway_api"
            )
