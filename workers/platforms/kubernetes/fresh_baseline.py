"""The fresh baseline: ``<app>-baseline``, new pods of the stable version beside the canary.

With ``analysis.baseline: fresh`` the canary is compared with pods of the same age and size
rather than with the warm stable fleet (Kayenta's baseline cluster): Canarist runs the
Deployment ``<app>-baseline`` with the canary's replica count and gives it the canary's share
of requests (the routers split three ways; on replica counts its pods simply count). Like the
canary it is Canarist's own (``app.kubernetes.io/managed-by: canarist``), and it is scaled to
zero on promotion and on rollback, after the router stopped sending it requests.

Its pods are the stable pod template as the rollout's ``Baseline`` recorded it (the stable's
images then), with two changes:

- ``canarist.dev/role: baseline``, which its selector requires: stable pods never carry it and
  canary pods carry ``canary``, so neither the stable's nor the canary's selector adopts them and
  the baseline never adopts theirs;
- no ``<version_label>``: a request router's stable Service is pinned to
  ``<version_label>: <stable version>`` (services.py) and can only select, so baseline pods must
  lack that label or the stable Service would send them its share too. Their own Service
  ``<app>-baseline`` selects the stable Service's labels without the version label, plus the
  role. The analysis selects their series by pod name, ``<app>-baseline-…`` (workers/job.py's
  ``fresh_baseline_selector``), never by a label the stable fleet shares.
"""

from __future__ import annotations

import copy
from typing import Any

from workers.platforms.base import NotYet, PlatformError, Readiness
from workers.platforms.kubernetes import desired as marks
from workers.platforms.kubernetes import services
from workers.platforms.kubernetes.api import DEPLOYMENTS, MERGE, SERVICES, Kube, Obj, merge_diff
from workers.platforms.kubernetes.desired import Baseline
from workers.platforms.kubernetes.target import Target
from workers.platforms.kubernetes.workloads import containers

ROLE = "baseline"


def read(kube: Kube, target: Target, refuse_foreign: bool) -> Obj | None:
    """The fresh baseline's Deployment, or None. One Canarist did not create is refused while
    the rollout progresses (``refuse_foreign``) and otherwise ignored: a promotion or rollback
    never scales someone else's Deployment, and never fails on it."""
    found = kube.get(DEPLOYMENTS, target.namespace, target.baseline)
    if found is not None and not marks.owned_by_canarist(found):
        if not refuse_foreign:
            return None
        raise PlatformError(
            f"Deployment {target.namespace}/{target.baseline} exists and is not managed by "
            f"canarist (no {marks.MANAGED_BY}: canarist label): analysis.baseline fresh needs "
            "that name for its baseline pods; rename or delete it"
        )
    return found


def pod_selector(stable: Obj, target: Target) -> dict[str, Any]:
    """The stable's selector without the version label, plus the baseline role."""
    selector = copy.deepcopy(stable.get("spec", {}).get("selector") or {})
    labels = {k: v for k, v in (selector.get("matchLabels") or {}).items() if k != target.label}
    selector["matchLabels"] = {**labels, marks.ROLE: ROLE}
    return selector


def pod_template(stable: Obj, target: Target, baseline: Baseline) -> dict[str, Any]:
    """The stable pod template with the recorded images, the role and no version label."""
    template = copy.deepcopy(stable.get("spec", {}).get("template") or {})
    metadata = template.setdefault("metadata", {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != target.label}
    metadata["labels"] = {**labels, marks.ROLE: ROLE}
    for container in containers({"spec": {"template": template}}):
        container["image"] = baseline.images.get(container["name"], container.get("image"))
    return template


def ensure(kube: Kube, target: Target, stable: Obj, current: Obj | None, baseline: Baseline) -> Obj:
    """Create the fresh baseline at 0 replicas, or re-template one left by another rollout or
    attempt; it carries this attempt's labels and, as its desired state, what it runs."""
    spec = {
        "selector": pod_selector(stable, target),
        "template": pod_template(stable, target, baseline),
        "revisionHistoryLimit": 2,
        **{
            key: stable["spec"][key]
            for key in ("minReadySeconds", "progressDeadlineSeconds", "strategy")
            if key in stable.get("spec", {})
        },
    }
    stamp = target.stamp({"version": baseline.version, "images": baseline.images}, owned=True)
    if current is None:
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": target.baseline, "namespace": target.namespace, **stamp},
            "spec": {**spec, "replicas": 0},
        }
        return kube.create(DEPLOYMENTS, target.namespace, body)
    if current.get("spec", {}).get("selector") != spec["selector"]:
        raise PlatformError(
            f"Deployment {target.namespace}/{target.baseline} selects "
            f"{current['spec']['selector']}, not the stable's selector plus the baseline role: "
            "delete it and Canarist recreates it"
        )

    def change(found: Obj) -> Obj | None:
        if marks.stamped(found, stamp):
            return None  # this attempt templated it already
        wanted = {**found.get("spec", {}), **spec}
        body = {"spec": merge_diff(found.get("spec", {}), wanted), "metadata": stamp}
        body["spec"].pop("replicas", None)
        return body

    changed = kube.modify(DEPLOYMENTS, target.namespace, target.baseline, change, MERGE)
    if changed is None:
        raise PlatformError(f"Deployment {target.namespace}/{target.baseline} vanished")
    return changed


def service_selector(target: Target, stable_service: Obj) -> dict[str, str]:
    selector = services.selector_of(stable_service)
    return {**{k: v for k, v in selector.items() if k != target.label}, marks.ROLE: ROLE}


def ensure_service(kube: Kube, target: Target, stable_service: Obj) -> None:
    """``<app>-baseline``: the stable Service's ports, the fresh baseline's pods."""
    selector = service_selector(target, stable_service)
    remedy = "analysis.baseline fresh needs that name for its Service; rename or delete it"
    services.ensure_owned(kube, target, stable_service, target.baseline, selector, remedy)


def service_ready(kube: Kube, target: Target, stable_service: Obj) -> Readiness | None:
    """None when ``<app>-baseline`` selects the fresh baseline's pods, else NotYet."""
    service = kube.get(SERVICES, target.namespace, target.baseline)
    wanted = service_selector(target, stable_service)
    if service is None or services.selector_of(service) != wanted:
        return NotYet(f"Service {target.baseline} does not select the fresh baseline's pods yet")
    return None
