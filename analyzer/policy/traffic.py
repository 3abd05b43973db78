"""The ``traffic:`` section: which router moves requests between the versions, and its objects.

A policy says how a release moves (``strategy:``); this section says what carries the traffic
while it does. It is snapshotted into each rollout at submit, so a rollout never changes router
mid-flight when the policy file changes (the rollout keeps it as workers/state.py's
``RolloutTraffic``).

- ``replicas`` (default)  no router: traffic follows replica counts behind one Service, so a
                          weight is approximated by the canary's share of the pods.
- ``gateway_api``         weighted backendRefs (and header/cookie matches) in an HTTPRoute.
- ``nginx_ingress``       a canary Ingress with ingress-nginx's canary annotations.

Object names default to the app's name (``<app>-canary`` for the canary Service), so one policy
serves many apps; name them only where an app's objects are called otherwise.

``ROUTER_LIMITS`` says what each router can express of a targeted audience and of a sticky split,
as data: the policy's checks (checks.py) refuse a ``strategy.match`` at its line with
``audience_refusals`` and a ``traffic.sticky`` with ``sticky_refusal``, and the Kubernetes routers
refuse the same with the same functions at submit, so the validator and the platform cannot
disagree.

``sticky`` keys a weighted split on a user instead of a request: a header or cookie the app
already sends, or a cookie the router sets on a user's first response. A user hashed below the
weight is on the canary, so raising the weight only adds users to it (the local platform's NGINX
does exactly that); ingress-nginx can only pin a user to the side the first request reached, with
its own session cookie, and the Gateway API's v1 HTTPRoute and kube-proxy cannot key a split on a
user at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from pydantic import ConfigDict, Field, StringConstraints, WithJsonSchema, model_validator

from analyzer.policy.base import PolicyModel, PolicyWord
from analyzer.policy.strategy import TOKEN_PATTERN, MatchRule


class Router(PolicyWord):
    """Every ``traffic.router`` a policy may name; the Kubernetes platform's router registry is
    keyed on it (workers/platforms/kubernetes/router.py)."""

    REPLICAS = "replicas"
    GATEWAY_API = "gateway_api"
    NGINX_INGRESS = "nginx_ingress"


RouterName = Annotated[
    Router,
    WithJsonSchema(
        {"enum": [router.value for router in Router], "title": "Router", "type": "string"}
    ),
]
"""A router as the policy writes it; its schema lists the names inline, as editors show them."""

OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
ObjectName = Annotated[str, StringConstraints(pattern=OBJECT_NAME_PATTERN, max_length=253)]
"""A Kubernetes object name (DNS-1123 subdomain): HTTPRoute and Ingress names."""

SERVICE_NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
ServiceName = Annotated[str, StringConstraints(pattern=SERVICE_NAME_PATTERN)]
"""A Service name (DNS-1035 label: starts with a letter, at most 63 characters)."""

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
"""A label key, with an optional DNS prefix: ``version``, ``app.kubernetes.io/version``."""


class StickyKind(PolicyWord):
    """What a sticky split is keyed on: how routers tell the forms of ``traffic.sticky`` apart."""

    HEADER = "header"  # a request header the app (or its gateway) already sends
    APP_COOKIE = "app_cookie"  # a cookie the app already sets
    ROUTER_COOKIE = "router_cookie"  # a cookie the router sets on the first response


@dataclass(frozen=True)
class StickyKey:
    """``traffic.sticky`` as routers and the rollout record see it (workers.spec keeps it)."""

    kind: StickyKind
    name: str  # the header's or the cookie's name

    def to_record(self) -> dict[str, str]:
        """As the rollout record and the local platform's app record keep it."""
        return {"kind": self.kind.value, "name": self.name}

    @classmethod
    def from_record(cls, record: object) -> StickyKey:
        """Read ``to_record``'s form back; ValueError naming what is wrong."""
        if not isinstance(record, Mapping) or not isinstance(record.get("name"), str):
            raise ValueError(f"a sticky key is a mapping with a kind and a name, not {record!r}")
        return cls(StickyKind(str(record.get("kind"))), record["name"])

    def describe(self) -> str:
        """The key in a message's words: ``header x-user-id``, ``the app's cookie session``."""
        if self.kind == StickyKind.HEADER:
            return f"header {self.name}"
        if self.kind == StickyKind.APP_COOKIE:
            return f"the app's cookie {self.name}"
        return f"cookie {self.name}, set by the router"


class StickySpec(PolicyModel):
    """Keep each user on one version while the weight moves: split on a user, not a request."""

    model_config = ConfigDict(title="Sticky")  # its name in the schema and messages

    cookie: str | None = Field(
        default=None,
        pattern=TOKEN_PATTERN,
        description="split on this cookie (set_by canarist: the router sets it when absent)",
    )
    header: str | None = Field(
        default=None, pattern=TOKEN_PATTERN, description="split on this request header"
    )
    set_by: Literal["canarist", "app"] | None = Field(
        default=None,
        description="cookie only: canarist (default: the router sets a random id on a user's "
        "first response) or app (the app's own cookie, e.g. a session)",
    )

    @model_validator(mode="after")
    def _one_key(self) -> StickySpec:
        if (self.cookie is None) == (self.header is None):
            raise ValueError(
                "sticky has exactly one of cookie or header: sticky: {cookie: canarist-split}, "
                "or sticky: {header: x-user-id}"
            )
        if self.header is not None and self.set_by is not None:
            raise ValueError("set_by is for a cookie: a header is always the app's")
        return self

    def key(self) -> StickyKey:
        if self.header is not None:
            return StickyKey(StickyKind.HEADER, self.header)
        assert self.cookie is not None  # _one_key says so
        kind = StickyKind.APP_COOKIE if self.set_by == "app" else StickyKind.ROUTER_COOKIE
        return StickyKey(kind, self.cookie)


class TrafficSpec(PolicyModel):
    """How traffic reaches each version; every name defaults from the app's name."""

    model_config = ConfigDict(title="Traffic")  # its name in the schema and messages

    router: RouterName = Field(
        default=Router.REPLICAS,
        description="replicas (traffic follows replica counts), gateway_api or nginx_ingress",
    )
    route: ObjectName | None = Field(
        default=None, description="gateway_api: the HTTPRoute to split (default: the app's name)"
    )
    ingress: ObjectName | None = Field(
        default=None,
        description="nginx_ingress: the stable Ingress to clone (default: the app's name)",
    )
    stable_service: ServiceName | None = Field(
        default=None,
        description="the stable Service (blue-green: the active one); default: the app's name",
    )
    canary_service: ServiceName | None = Field(
        default=None,
        description="the canary Service (blue-green: the preview one); default: <app>-canary",
    )
    version_label: LabelKey = Field(
        default="version", description="the pod label whose value tells the versions apart"
    )
    sticky: StickySpec | None = Field(
        default=None,
        description="keep each user on one version while the weight moves (default: every "
        "request is split on its own)",
    )


GATEWAY_API_MAX_MATCHES = 64
"""The Gateway API's limit on the matches of one HTTPRoute rule (``maxItems`` in its CRD)."""


@dataclass(frozen=True)
class RouterLimits:
    """What a router can express of a targeted audience; ``None``: no limit of its own."""

    said_as: str  # how a message names the router: the product, not the policy word
    routes_audience: bool
    max_rules: int | None = None
    max_headers: int | None = None
    max_cookies: int | None = None
    cookie_values: frozenset[str] | None = None
    sticky: frozenset[StickyKind] = frozenset()  # what a sticky split may be keyed on
    sticky_why: str = ""  # why not, when it may not be keyed on a user at all


ROUTER_LIMITS: dict[Router, RouterLimits] = {
    Router.REPLICAS: RouterLimits(
        "traffic.router replicas",
        routes_audience=False,
        sticky_why="kube-proxy picks a pod per connection, whoever sends it",
    ),
    # Each audience rule is one match of the canary's HTTPRoute rule (times the route's own).
    # Session persistence is not in the standard (v1) HTTPRoute: only experimental, and each
    # implementation's own, so a split there is per request.
    Router.GATEWAY_API: RouterLimits(
        "the Gateway API",
        routes_audience=True,
        max_rules=GATEWAY_API_MAX_MATCHES,
        sticky_why="a standard (v1) HTTPRoute splits its weighted backendRefs per request "
        "(session persistence is experimental and implementation-specific)",
    ),
    # canary-by-header and canary-by-cookie take one name each; a cookie routes when "always".
    # Sticky: session affinity on both Ingresses, with the canary's affinity-canary-behavior
    # sticky, pins a user to the side their first request reached, with ingress-nginx's own
    # cookie: never keyed on the app's header or cookie.
    Router.NGINX_INGRESS: RouterLimits(
        "ingress-nginx",
        routes_audience=True,
        max_headers=1,
        max_cookies=1,
        cookie_values=frozenset({"always"}),
        sticky=frozenset({StickyKind.ROUTER_COOKIE}),
        sticky_why="its session affinity sets and reads a cookie of its own",
    ),
}


def sticky_refusal(router: Router, sticky: StickyKey | None) -> str | None:
    """Why ``router`` cannot keep users on one version by ``sticky``, and what to do; None if it
    can (or nothing is sticky)."""
    limits = ROUTER_LIMITS[router]
    if sticky is None or sticky.kind in limits.sticky:
        return None
    if not limits.sticky:
        return (
            f"{limits.said_as} cannot keep a user on one version ({limits.sticky_why}): every "
            "request would be split on its own; use traffic.router nginx_ingress (with sticky: "
            "{cookie: <name>}), the local platform, or drop sticky"
        )
    forms = " or ".join(f"{{{_sticky_form(kind)}}}" for kind in sorted(limits.sticky))
    return (
        f"{limits.said_as} cannot key a split on {sticky.describe()} ({limits.sticky_why}): "
        f"use sticky: {forms}, or the local platform"
    )


def _sticky_form(kind: StickyKind) -> str:
    return {
        StickyKind.HEADER: "header: <name>",
        StickyKind.APP_COOKIE: "cookie: <name>, set_by: app",
        StickyKind.ROUTER_COOKIE: "cookie: <name>",
    }[kind]


class AudienceRule(Protocol):
    """One audience rule as a router sees it (a region is a header): workers.actions.Match."""

    @property
    def kind(self) -> str: ...  # "header" or "cookie"
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def regex(self) -> bool: ...


@dataclass(frozen=True)
class RouterMatch:
    """A policy's match rule as every router sees it: a request header or a cookie (a region is
    the header ``region_header``). workers.actions.Match is built from it."""

    kind: Literal["header", "cookie"]
    name: str
    value: str
    regex: bool = False


def router_match(rule: MatchRule, region_header: str) -> RouterMatch:
    """One policy match rule as a router match."""
    if rule.header is not None:
        if rule.header.regex is not None:
            return RouterMatch("header", rule.header.name, rule.header.regex, regex=True)
        assert rule.header.value is not None  # the policy model requires value or regex
        return RouterMatch("header", rule.header.name, rule.header.value)
    if rule.cookie is not None:
        return RouterMatch("cookie", rule.cookie.name, rule.cookie.value)
    assert rule.region is not None  # the policy model requires exactly one kind
    return RouterMatch("header", region_header, rule.region)


@dataclass(frozen=True)
class Refusal:
    """Why a router cannot route rule ``index`` of an audience; ``of_value``: the rule's value is
    what it cannot express, not the rule itself."""

    index: int
    message: str
    of_value: bool = False


def audience_refusals(router: Router, audience: Sequence[AudienceRule]) -> list[Refusal]:
    """Each rule of ``audience`` that ``router`` cannot express, with why and what to do."""
    limits = ROUTER_LIMITS[router]
    if not limits.routes_audience:
        why = f"{limits.said_as} cannot send a chosen audience to the canary"
        return [Refusal(0, f"{why}; use gateway_api or nginx_ingress")] if audience else []
    refusals = []
    seen = {"header": 0, "cookie": 0}
    for index, rule in enumerate(audience):
        seen[rule.kind] = seen.get(rule.kind, 0) + 1
        if limits.max_rules is not None and index == limits.max_rules:
            message = (
                f"{limits.said_as} allows {limits.max_rules} audience rules (matches of one "
                f"HTTPRoute rule); this is rule {index + 1}: match fewer, e.g. with one regex"
            )
            refusals.append(Refusal(index, message))
        refusals.extend(_kind_refusals(limits, index, rule, seen[rule.kind]))
    return refusals


def _kind_refusals(
    limits: RouterLimits, index: int, rule: AudienceRule, number: int
) -> list[Refusal]:
    """What ``limits`` refuse of ``rule``, the ``number``-th of its kind in the audience."""
    refusals = []
    limit = limits.max_headers if rule.kind == "header" else limits.max_cookies
    if limit is not None and number == limit + 1:
        message = (
            f"{limits.said_as} matches {_many(limits.max_headers, 'header')} and "
            f"{_many(limits.max_cookies, 'cookie')} per canary; this is {rule.kind} {number} of "
            "the audience (a region is a header too): keep fewer, or use traffic.router "
            "gateway_api"
        )
        refusals.append(Refusal(index, message))
    allowed = limits.cookie_values
    if rule.kind == "cookie" and allowed is not None and (rule.regex or rule.value not in allowed):
        values = " or ".join(repr(value) for value in sorted(allowed))
        message = (
            f"{limits.said_as} routes by cookie {rule.name} only when its value is {values}, "
            f"not {rule.value!r}: use that value, a header, or traffic.router gateway_api"
        )
        refusals.append(Refusal(index, message, of_value=True))
    return refusals


def _many(count: int | None, noun: str) -> str:
    if count is None:
        return f"any number of {noun}s"
    return f"one {noun}" if count == 1 else f"{count} {noun}s"
