"""The rollout job as other services write it: validated, bounded and normalised before anything
is stored.

A job comes from another service (HTTP body, Celery payload), so nothing in it is trusted: every
field has an explicit bound, each refusal names the field and the limit, and no message quotes a
value back whole (a 10 MB selector gets a one-line answer). Bounds, and why:

    field           bound                                   why
    app, namespace  DNS-1123 label (63)                     Kubernetes object names
    version         label value (63)                        it becomes a pod label
    policy          policy name (63)                        a file stem in the policy directory
    platform        one of the registered names             no silent fallback
    image           512 characters, no control character    a registry reference or command line
    images          16 containers, DNS label -> image       a pod has a handful of containers
    args            32 entries, name (63) -> 1 KiB value    values land in every query
    baseline/canary 1 KiB, 16 label matchers                they land in every query's URL
    fresh_baseline  the same (optional)                     likewise
    idempotency_key 200 printable ASCII characters          HTTP header material

``digest()`` fingerprints the normalised job (selectors re-rendered, maps sorted) so that an
idempotency key can be bound to the whole job, not to a few of its fields.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analyzer.errors import SelectorError, TemplateError
from analyzer.policy.promql import Matcher, Selector, shown
from analyzer.policy.strategy import StrategyType
from analyzer.policy.traffic import TrafficSpec
from workers.platforms import platform_names
from workers.spec import RolloutSpec, RolloutTraffic

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
LABEL_VALUE = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
POLICY_NAME = r"^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$"  # analyzer.policy.base.Name
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
IMAGE = r"^[^\s\x00-\x1f\x7f]{1,512}$"

MAX_IMAGE_CHARS = 512
MAX_CONTAINERS = 16
MAX_ARGS = 32
MAX_ARG_VALUE_CHARS = 1024
MAX_SELECTOR_CHARS = 1024
MAX_MATCHERS = 16


class RolloutJob(BaseModel):
    """A request to roll ``version`` of ``app`` out in ``namespace``, judged by ``policy``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str = Field(pattern=DNS_LABEL, description="DNS-1123 label, e.g. checkout")
    namespace: str = Field(pattern=DNS_LABEL, description="DNS-1123 label, e.g. shop")
    version: str = Field(pattern=LABEL_VALUE, description="the new version, e.g. v2 or 1.4.0")
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE_CHARS,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="kubernetes: the new image of the pod's only container, or of the one named "
        "like the app; local: the new version's command line, with a {port} placeholder",
    )
    images: dict[str, str] = Field(
        default_factory=dict,
        description=f"new images by container name (at most {MAX_CONTAINERS}), for pods with "
        "several containers",
    )
    policy: str = Field(pattern=POLICY_NAME, description="a policy file's stem in the policy dir")
    platform: str = Field(
        default="observe", max_length=63, description="where traffic moves: observe, ..."
    )
    args: dict[str, str] = Field(
        default_factory=dict,
        description=f"values for the policy's args (at most {MAX_ARGS}, each at most "
        f"{MAX_ARG_VALUE_CHARS} characters)",
    )
    baseline: str = Field(
        min_length=1,
        max_length=MAX_SELECTOR_CHARS,
        description=f'label matchers, e.g. app="checkout",v="1" (at most {MAX_MATCHERS})',
    )
    canary: str = Field(
        min_length=1,
        max_length=MAX_SELECTOR_CHARS,
        description="label matchers of the new version's series",
    )
    fresh_baseline: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SELECTOR_CHARS,
        description="label matchers of the fresh baseline's series, for a policy with "
        "analysis.baseline fresh (default: baseline's matchers narrowed to the pods Canarist "
        "starts, see fresh_baseline_selector)",
    )
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"
    )
    from_manifest: bool = Field(
        default=False,
        description="the rollout was started by a change of the Deployment's manifest (canarist "
        "watch sets it): the manifest, e.g. in Git, names the new version, so an abort's alert "
        "says to revert it there",
    )

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, name: str) -> str:
        if name not in platform_names():
            raise ValueError(
                f"unknown platform {shown(name)}; known: {', '.join(platform_names())}"
            )
        return name

    @field_validator("images", mode="before")
    @classmethod
    def _images(cls, images: Any) -> Any:
        """Counted before the entries are validated: a huge map gets one error, not one each."""
        if isinstance(images, dict):
            _at_most(len(images), MAX_CONTAINERS, "containers")
            for container, image in images.items():
                if not isinstance(container, str) or not re.fullmatch(DNS_LABEL, container):
                    raise ValueError(
                        f"container name {shown(str(container))} is not a DNS-1123 label"
                    )
                if not isinstance(image, str) or not re.fullmatch(IMAGE, image):
                    raise ValueError(
                        f"image {shown(str(image))} of container {container!r} is not an image: "
                        f"1 to {MAX_IMAGE_CHARS} characters, no whitespace or control character"
                    )
        return images

    @field_validator("args", mode="before")
    @classmethod
    def _args(cls, args: Any) -> Any:
        if isinstance(args, dict):
            _at_most(len(args), MAX_ARGS, "args")
            for name, value in args.items():
                if not isinstance(name, str) or not re.fullmatch(POLICY_NAME, name):
                    raise ValueError(f"arg name {shown(str(name))} is not a policy arg name")
                if not isinstance(value, str):
                    continue  # pydantic says it is not a string, naming the arg
                if len(value) > MAX_ARG_VALUE_CHARS or not re.fullmatch(NO_CONTROL, value):
                    raise ValueError(
                        f"arg {name!r} must be at most {MAX_ARG_VALUE_CHARS} characters "
                        "without control characters"
                    )
        return args

    @field_validator("baseline", "canary", "fresh_baseline")
    @classmethod
    def _selector(cls, text: str | None) -> str | None:
        if text is None:
            return None
        try:
            selector = Selector.parse(text)
            rendered = selector.render()
        except (SelectorError, TemplateError) as exc:
            raise ValueError(str(exc)) from None
        _at_most(len(selector.matchers), MAX_MATCHERS, "label matchers")
        if len(rendered) > MAX_SELECTOR_CHARS:  # escaping can lengthen it
            raise ValueError(f"at most {MAX_SELECTOR_CHARS} characters once normalised")
        return rendered

    @model_validator(mode="after")
    def _distinct_versions(self) -> RolloutJob:
        if self.canary in (self.baseline, self.fresh_baseline):
            raise ValueError("baseline and canary select the same series: nothing to compare")
        return self

    @model_validator(mode="after")
    def _image_fits_the_platform(self) -> RolloutJob:
        if self.image is None:
            return self
        if self.platform == "local" and "{port}" not in self.image:
            raise ValueError(
                "image: the local platform runs a command line, which must contain {port}"
            )
        if self.platform != "local" and re.search(r"\s", self.image):
            raise ValueError(
                "image must not contain whitespace (only the local platform takes a command line)"
            )
        return self

    def digest(self) -> str:
        """SHA-256 of the normalised job without its idempotency key: two jobs that would run
        the same rollout have the same digest, and any other difference changes it."""
        unset = {"fresh_baseline"} if self.fresh_baseline is None else set()  # digests as before
        unset |= set() if self.from_manifest else {"from_manifest"}
        record = self.model_dump(mode="json", exclude={"idempotency_key", *unset})
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def spec(
        self,
        args: dict[str, str],
        strategy: StrategyType = StrategyType.CANARY,
        traffic: TrafficSpec | None = None,
        *,
        fresh_baseline: bool = False,
        pod_label: str = "pod",
    ) -> RolloutSpec:
        """The rollout's spec, with the policy's strategy type and traffic section at submit;
        ``fresh_baseline``: the policy's analysis.baseline is fresh (its pod_label: the label
        that names pods)."""
        routed = rollout_traffic(traffic or TrafficSpec(), self.app)
        fresh = ""
        if fresh_baseline:
            fresh = self.fresh_baseline or fresh_baseline_selector(
                self.baseline, self.platform, self.app, pod_label, routed.version_label
            )
        return RolloutSpec(
            version=self.version,
            image=self.image or "",
            platform=self.platform,
            baseline_selector=self.baseline,
            canary_selector=self.canary,
            args=tuple(sorted(args.items())),
            strategy=strategy,
            images=tuple(sorted(self.images.items())),
            traffic=routed,
            fresh_baseline_selector=fresh,
            from_manifest=self.from_manifest,
        )


def _at_most(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise ValueError(f"at most {limit} {what}, not {count}")


def fresh_baseline_selector(
    baseline: str, platform: str, app: str, pod_label: str, version_label: str
) -> str:
    """The fresh baseline's series by the convention of the pods or processes Canarist starts for
    it: the job's baseline matchers, narrowed so that the stable fleet never matches.

    local        processes are scraped with ``track="baseline"`` (the stable's: ``stable``)
    otherwise    pods are named ``<app>-baseline-<hash>-<id>`` (the Deployment ``<app>-baseline``)
                 and carry no ``<version_label>`` (the stable Service, pinned to it, must not
                 select them), so matchers on that label are dropped and
                 ``<pod_label>=~"<app>-baseline-.+"`` is added
    """
    matchers = Selector.parse(baseline).matchers
    if platform == "local":
        extra = Matcher("track", "=", "baseline")
        kept = tuple(m for m in matchers if m.label != extra.label)
    else:
        extra = Matcher(pod_label, "=~", f"{app}-baseline-.+")  # app: a DNS label
        kept = tuple(m for m in matchers if m.label not in (version_label, pod_label))
    return Selector((*kept, extra)).render()


def rollout_traffic(traffic: TrafficSpec, app: str) -> RolloutTraffic:
    """The policy's traffic section as the rollout keeps it, every name resolved for ``app``."""
    return RolloutTraffic(
        router=traffic.router,
        route=traffic.route or "",
        ingress=traffic.ingress or "",
        stable_service=traffic.stable_service or "",
        canary_service=traffic.canary_service or "",
        version_label=traffic.version_label,
        sticky=traffic.sticky.key() if traffic.sticky is not None else None,
    ).resolved(app)
