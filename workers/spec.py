"""The job as a rollout keeps it: which version goes where, how its versions are told apart in
Prometheus, and what of the policy was fixed at submit (strategy type, traffic section).

Part of the rollout's state (workers/state.py stores it inside the rollout record and says which
of its keys need which record format); frozen, and free of I/O like the rest of the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from analyzer.analysis import Versions
from analyzer.policy.promql import Selector
from analyzer.policy.strategy import StrategyType
from analyzer.policy.traffic import Router, StickyKey


@dataclass(frozen=True)
class RolloutTraffic:
    """The policy's ``traffic:`` section at submit, names resolved for the app.

    An empty name means "the app's default" (records written before names were resolved at
    submit have them empty): ``resolved(app)`` fills them in.
    """

    router: Router = Router.REPLICAS
    route: str = ""  # gateway_api: the HTTPRoute
    ingress: str = ""  # nginx_ingress: the stable Ingress
    stable_service: str = ""  # blue-green: the active Service
    canary_service: str = ""  # blue-green: the preview Service
    version_label: str = "version"
    # traffic.sticky: what a weighted split is keyed on (None: each request on its own); a
    # rollout record with it says format 4 (workers/state.py)
    sticky: StickyKey | None = None

    def resolved(self, app: str) -> RolloutTraffic:
        """Every name filled in: the app's name, and ``<app>-canary`` for the canary Service."""
        return replace(
            self,
            route=self.route or app,
            ingress=self.ingress or app,
            stable_service=self.stable_service or app,
            canary_service=self.canary_service or f"{app}-canary",
        )


@dataclass(frozen=True)
class RolloutSpec:
    """The job: which version to roll out where, and how the analysis tells versions apart."""

    version: str
    image: str  # the pod's only container, or the one named like the app ("" = no change)
    platform: str
    baseline_selector: str  # Prometheus label matchers, e.g. app="checkout",version="v1"
    canary_selector: str
    args: tuple[tuple[str, str], ...] = ()
    strategy: StrategyType = StrategyType.CANARY  # the policy's at submit: how platforms scale
    images: tuple[tuple[str, str], ...] = ()  # (container, image), sorted: several containers
    traffic: RolloutTraffic = field(default_factory=RolloutTraffic)  # the policy's router at submit
    # analysis.baseline fresh at submit: the selector of the fresh baseline's series only ("":
    # the canary is compared with the stable fleet, ``baseline_selector``)
    fresh_baseline_selector: str = ""
    # started by canarist watch from a Deployment manifest's change: Git still names the version
    from_manifest: bool = False

    @property
    def args_map(self) -> dict[str, str]:
        return dict(self.args)

    @property
    def fresh_baseline(self) -> bool:
        """The platform runs a fresh baseline beside the canary, and the analysis reads it."""
        return bool(self.fresh_baseline_selector)

    @property
    def compared_selector(self) -> str:
        """The label matchers of the series the canary is compared with."""
        return self.fresh_baseline_selector or self.baseline_selector

    def compared_with(self) -> str:
        """Which baseline the analysis reads, in words (status, the API, the report)."""
        if self.fresh_baseline:
            return (
                "a fresh baseline: pods of the stable version started with the canary, with its "
                "size and its share of requests"
            )
        return "the stable fleet"

    def versions(self, baseline_shift: timedelta = timedelta(0)) -> Versions:
        """Who the analysis compares, as the analyzer takes it; SelectorError if unparsable.
        With a fresh baseline only its series: never the stable fleet's."""
        return Versions(
            Selector.parse(self.compared_selector),
            Selector.parse(self.canary_selector),
            self.args_map,
            baseline_shift=baseline_shift,
        )

    @property
    def images_map(self) -> dict[str, str]:
        return dict(self.images)

    def to_record(self) -> dict[str, Any]:
        """The spec as the rollout record keeps it (JSON-safe: maps for pairs, words for enums)."""
        spec = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        traffic = {f.name: _plain(getattr(self.traffic, f.name)) for f in fields(self.traffic)}
        sticky = self.traffic.sticky
        traffic["sticky"] = None if sticky is None else sticky.to_record()
        return {**spec, "args": dict(self.args), "images": dict(self.images), "traffic": traffic}

    @classmethod
    def from_record(cls, value: Mapping[str, Any]) -> RolloutSpec:
        """The spec, its strategy and router as the policy's words (a word no policy has is a bad
        record); ``images`` and ``traffic`` are absent from records written before they were."""
        pairs: dict[str, tuple[tuple[str, str], ...]] = {}
        for key in ("args", "images"):
            mapping = value.get(key, {})
            if not isinstance(mapping, Mapping) or not all(
                isinstance(item, str) for pair in mapping.items() for item in pair
            ):
                raise ValueError(f"spec.{key} must be a mapping of strings")
            pairs[key] = tuple(sorted(mapping.items()))
        traffic = value.get("traffic", {})
        if not isinstance(traffic, Mapping):
            raise ValueError("spec.traffic must be a mapping")
        strategy = StrategyType(value.get("strategy", StrategyType.CANARY))
        router = Router(traffic.get("router", Router.REPLICAS))
        sticky = traffic.get("sticky")
        sticky = None if sticky is None else StickyKey.from_record(sticky)
        routed = RolloutTraffic(**{**traffic, "router": router, "sticky": sticky})
        return cls(**{**value, **pairs, "strategy": strategy, "traffic": routed})


def _plain(value: Any) -> Any:
    """A field as JSON keeps it: an enum as its word, a tuple as a list."""
    if isinstance(value, StrEnum):
        return value.value
    return list(value) if isinstance(value, tuple) else value
