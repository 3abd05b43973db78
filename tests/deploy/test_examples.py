"""The checkout example fits together the way the Kubernetes platform needs it to.

Its policy routes with ``gateway_api``; the HTTPRoute, Service and Deployment it names exist in
the app's namespace; the route has the rule the router splits (sole backend: the stable Service,
on one of its ports); the pods carry the version label and the selector leaves it out (a
promotion changes it); Canarist's workers are bound there; and the workers can load the policy
from the ConfigMap the example merges it into. The Deployment is opted in to the GitOps watch:
paused, annotated with that policy, and a changed image in it is a job intake accepts.
"""

from __future__ import annotations

import copy
from typing import Any

from analyzer.policy.loader import load_policy_text
from analyzer.policy.models import Policy
from tests.deploy.manifests import EXAMPLES, render
from workers.job import RolloutJob
from workers.platforms.kubernetes import opt_in

EXAMPLE = render(EXAMPLES / "checkout")
APP = "checkout"


def policy() -> Policy:
    policies = EXAMPLE.find("ConfigMap", "canarist-policies", "canarist")["data"]
    return load_policy_text(policies["checkout-canary.yaml"], "checkout-canary.yaml")


def app_object(kind: str, name: str) -> dict[str, Any]:
    return EXAMPLE.find(kind, name, "shop")


def test_the_policy_routes_with_the_gateway_api() -> None:
    traffic = policy().traffic
    assert traffic.router == "gateway_api"
    assert traffic.route in (None, APP)


def test_the_route_has_the_rule_the_router_splits() -> None:
    traffic = policy().traffic
    route = app_object("HTTPRoute", traffic.route or APP)
    stable = app_object("Service", traffic.stable_service or APP)
    ports = {port["port"] for port in stable["spec"]["ports"]}
    splittable = [
        rule
        for rule in route["spec"]["rules"]
        if [ref["name"] for ref in rule["backendRefs"]] == [stable["metadata"]["name"]]
    ]
    assert splittable, "no rule whose sole backend is the stable Service"
    assert all(rule["backendRefs"][0]["port"] in ports for rule in splittable)


def test_the_pods_carry_the_version_label_and_the_selectors_leave_it_out() -> None:
    label = policy().traffic.version_label
    deployment = app_object("Deployment", APP)
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert template_labels[label] == "v1"
    assert label not in deployment["spec"]["selector"]["matchLabels"]
    service = app_object("Service", policy().traffic.stable_service or APP)
    assert service["spec"]["selector"].items() <= template_labels.items()


def test_canarists_workers_are_bound_in_the_apps_namespace() -> None:
    binding = app_object("RoleBinding", "canarist-worker")
    assert binding["roleRef"]["name"] == "canarist-worker"
    EXAMPLE.find("ClusterRole", "canarist-worker")
    EXAMPLE.find("Namespace", "shop")


def test_the_example_adds_its_policy_and_keeps_the_base_ones() -> None:
    base = render(EXAMPLES.parent / "base").find("ConfigMap", "canarist-policies", "canarist")
    merged = EXAMPLE.find("ConfigMap", "canarist-policies", "canarist")
    assert set(merged["data"]) == {*base["data"], "checkout-canary.yaml"}
    assert policy().name == "checkout-canary"


def test_the_deployment_opts_in_to_the_watch_and_a_changed_image_is_a_valid_job() -> None:
    deployment = app_object("Deployment", APP)
    assert deployment["spec"]["paused"] is True, "held: no pod runs a new template unanalysed"
    assert opt_in.notes(deployment)[opt_in.POLICY] == policy().name
    label = policy().traffic.version_label
    assert opt_in.version_label(deployment) == label
    running = deployment["spec"]["template"]
    changed = copy.deepcopy(running)
    changed["metadata"]["labels"][label] = "v2"
    changed["spec"]["containers"][0]["image"] = "registry.example.com/shop/checkout:v2"
    request = opt_in.job_for(deployment, changed, running, label, None)
    assert isinstance(request, opt_in.CanaryRequest), request
    job = RolloutJob.model_validate(vars(request))
    assert (job.baseline, job.canary) == (
        'app="checkout",version="v1"',
        'app="checkout",version="v2"',
    )
    assert job.images == {"checkout": "registry.example.com/shop/checkout:v2"}
