"""The TrafficRouter seam: how requests are split between the stable and the canary Service.

A router writes one declarative wish into the object it owns or shares and reads it back:

    check(target, weight, match)         PlatformError when the router cannot express the split
                                         with the target's objects (none, or no rule or path to
                                         the stable Service): asked before anything is written
    set_traffic(target, weight, match)   ``weight`` percent of requests, and every request
                                         matching ``match``, to the canary; the rest to stable
    reset(target)                        everything to stable, the router's extra parts gone
    verify(target, weight, match)        Ready once the object says exactly that (weight 0 and
                                         no match after a reset); NotYet or Failed otherwise
    canary_replicas(stable, weight, match)   how many canary pods that split needs

Routers take the call's ``Target`` rather than the rollout (the resolved names they need). Each
implementation is a flat sibling (gateway_api.py, nginx_ingress.py, replicas.py), named by the
policy's word for it (``analyzer.policy.traffic.Router``), and ``ROUTERS`` is the registry keyed on
those words: an unknown name raises ``UnknownRouterError``, so a rollout never silently falls back
to another router. No gateway or ingress controller needs to run: Canarist writes the objects and
verifies what they say; when a controller reports a route as not accepted, verify says Failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from analyzer.errors import UnknownNameError
from analyzer.policy.traffic import Router
from analyzer.registry import Registry
from workers.actions import Match
from workers.platforms.base import PlatformError, Readiness
from workers.platforms.kubernetes.api import Kube
from workers.platforms.kubernetes.gateway_api import GatewayApiRouter
from workers.platforms.kubernetes.nginx_ingress import NginxIngressRouter
from workers.platforms.kubernetes.replicas import ReplicasRouter
from workers.platforms.kubernetes.target import Target


class TrafficRouter(Protocol):
    name: Router

    def check(self, target: Target, weight: int, match: tuple[Match, ...]) -> None: ...

    def set_traffic(self, target: Target, weight: int, match: tuple[Match, ...]) -> None: ...

    def reset(self, target: Target) -> None: ...

    def verify(self, target: Target, weight: int, match: tuple[Match, ...]) -> Readiness: ...

    def canary_replicas(self, stable: int, weight: int, match: tuple[Match, ...]) -> int: ...


class UnknownRouterError(PlatformError, UnknownNameError):
    """No router is registered under a name (a permanent PlatformError, as any refusal)."""


_IMPLEMENTATIONS: tuple[type[TrafficRouter], ...] = (
    GatewayApiRouter,
    NginxIngressRouter,
    ReplicasRouter,
)
ROUTERS: Registry[Router, Callable[[Kube], TrafficRouter]] = Registry(
    "traffic router", {router.name: router for router in _IMPLEMENTATIONS}, UnknownRouterError
)


def router_for(name: str, kube: Kube) -> TrafficRouter:
    """The router a rollout's ``traffic.router`` names; UnknownRouterError for an unknown one."""
    return ROUTERS[name](kube)
