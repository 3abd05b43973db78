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
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, WithJsonSchema

from analyzer.policy.base import PolicyModel, PolicyWord


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
