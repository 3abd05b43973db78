"""Services: one per version, for the routers and for blue-green.

A Service can only select, never exclude, so a Service for stable pods alone needs a label the
canary pods do not share: ``<version_label>``, whose stable value the baseline recorded. The
design pins the user's stable Service to it (``version: v1``) while a request router or
blue-green is in use, and leaves it pinned to the version that is stable at the end (``v2``
after a promotion): re-pinning is one selector patch, and the Service keeps selecting exactly the
stable pods between rollouts too. This is the one change Canarist makes to the user's Service;
Argo Rollouts injects a pod-template-hash into the selector instead, Flagger clones the whole
Deployment into a ``-primary`` copy: pinning by the version label keeps the user's Deployment
and its name as the stable one and needs no extra copy of it.

``<canary_service>`` is Canarist's own: the stable Service's ports, selecting the stable
Service's labels plus ``<version_label>: <new version>`` and ``canarist.dev/role: canary`` (the
canary pods). Blue-green uses the pair as active (stable_service) and preview (canary_service):
the switch re-pins the active Service to the new version.
"""

from __future__ import annotations

import copy
from typing import Any

from workers.platforms.base import NotYet, PlatformError, Readiness
from workers.platforms.kubernetes import desired as marks
from workers.platforms.kubernetes.api import SERVICES, AlreadyExists, Kube, Obj
from workers.platforms.kubernetes.target import Target


def read_stable_service(kube: Kube, target: Target) -> Obj:
    name = target.traffic.stable_service
    service = kube.get(SERVICES, target.namespace, name)
    if service is None:
        raise PlatformError(f"no Service {target.namespace}/{name} (traffic.stable_service)")
    return service


def selector_of(service: Obj) -> dict[str, str]:
    selector: dict[str, str] = service.get("spec", {}).get("selector") or {}
    return selector


def canary_selector(target: Target, stable_service: Obj) -> dict[str, str]:
    return {**selector_of(stable_service), target.label: target.version, marks.ROLE: "canary"}


def ensure_canary_service(kube: Kube, target: Target, stable_service: Obj) -> None:
    """Create or correct ``<canary_service>``: the stable Service's ports, the canary pods."""
    name, selector = target.traffic.canary_service, canary_selector(target, stable_service)
    remedy = "set traffic.canary_service to a free name, or delete it"
    ensure_owned(kube, target, stable_service, name, selector, remedy)


def ensure_owned(
    kube: Kube,
    target: Target,
    stable_service: Obj,
    name: str,
    selector: dict[str, str],
    remedy: str,
) -> None:
    """Create or correct Canarist's Service ``name``: the stable Service's ports, ``selector``;
    ``remedy``: what a person does when a Service Canarist does not manage has the name."""
    namespace = target.namespace
    ports = [
        {key: port[key] for key in ("name", "port", "targetPort", "protocol") if key in port}
        for port in stable_service.get("spec", {}).get("ports") or []
    ]
    metadata = target.stamp({"selector": selector}, owned=True)
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, **copy.deepcopy(metadata)},
        "spec": {"selector": selector, "ports": ports, "type": "ClusterIP"},
    }
    if kube.get(SERVICES, namespace, name) is None:
        try:
            kube.create(SERVICES, namespace, body)
            return
        except AlreadyExists:
            pass  # created since we looked: correct it below

    def change(current: Obj) -> Obj | None:
        if not marks.owned_by_canarist(current):
            raise PlatformError(
                f"Service {namespace}/{name} exists and is not managed by canarist: {remedy}"
            )
        same_ports = _ports(current) == _ports(body)
        if selector_of(current) == selector and same_ports and marks.stamped(current, metadata):
            return None
        spec: dict[str, Any] = {"selector": _replacing(selector_of(current), selector)}
        if not same_ports:
            spec["ports"] = ports
        return {"metadata": metadata, "spec": spec}

    kube.modify(SERVICES, namespace, name, change)


def selects(kube: Kube, target: Target, stable_service: Obj) -> Readiness | None:
    """None when ``<canary_service>`` selects the canary pods, else NotYet."""
    name = target.traffic.canary_service
    service = kube.get(SERVICES, target.namespace, name)
    wanted = canary_selector(target, stable_service)
    if service is None or selector_of(service) != wanted:
        return NotYet(f"Service {name} does not select the canary pods yet")
    return None


def pin(kube: Kube, target: Target, name: str, version: str) -> None:
    """Make Service ``name`` select only pods with ``<version_label>: version``."""

    def change(current: Obj) -> Obj | None:
        selector = selector_of(current)
        if selector.get(target.label) == version and marks.ROLE not in selector:
            return None
        wanted = {**selector, target.label: version}
        wanted.pop(marks.ROLE, None)
        metadata = target.stamp({"selector": wanted}, owned=marks.owned_by_canarist(current))
        return {"metadata": metadata, "spec": {"selector": _replacing(selector, wanted)}}

    if kube.modify(SERVICES, target.namespace, name, change) is None:
        raise PlatformError(f"no Service {target.namespace}/{name} to point at {version}")


def pinned(
    kube: Kube, target: Target, name: str, version: str, missing_ok: bool = False
) -> Readiness | None:
    """None when Service ``name`` selects ``version`` (only), else NotYet saying what it selects.
    With ``missing_ok`` an absent Service is fine (a rollback has nothing to point back)."""
    service = kube.get(SERVICES, target.namespace, name)
    if service is None and missing_ok:
        return None
    if service is None:
        raise PlatformError(f"no Service {target.namespace}/{name}")
    selector = selector_of(service)
    if selector.get(target.label) == version and marks.ROLE not in selector:
        return None
    return NotYet(f"Service {name} selects {selector}, not {target.label}={version}")


def _replacing(current: dict[str, str], wanted: dict[str, str]) -> dict[str, str | None]:
    """A map patch that leaves exactly ``wanted``: keys to drop are sent as null."""
    patch: dict[str, str | None] = {key: None for key in current if key not in wanted}
    patch.update(wanted)
    return patch


def _ports(service: Obj) -> list[tuple[Any, ...]]:
    """The ports as a real apiserver stores them (protocol TCP, targetPort the port, when not
    given), so a Service read back is never taken for one that needs its ports patched."""
    ports = service.get("spec", {}).get("ports") or []
    return sorted(
        (
            str(port.get("name", "")),
            str(port.get("port", "")),
            str(port.get("targetPort", port.get("port", ""))),
            str(port.get("protocol", "TCP")),
        )
        for port in ports
    )
