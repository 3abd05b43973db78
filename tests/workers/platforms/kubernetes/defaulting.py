"""The defaults a real kube-apiserver writes into what it stores, for the emulator to write too.

A test that passes on the emulator must pass on a real cluster, and a real API server never
stores an object as it was sent: it fills in defaults, and the platform then reads those back.
Code that compares what it wants with what it reads (is the route already split? is the canary
Service's port right?) must see the defaults, or it re-patches forever on a real cluster while
the emulator says all is well. So the emulator applies them on every create and every patch:

- built-in kinds: a small table of the defaults the platform meets (``builtin``), the values
  the apiserver's defaulting functions give; the list is not complete, only what the objects
  the tests write would get;
- custom resources: the ``default:`` values of the CRD's structural openAPIV3Schema
  (``from_schema``), walked as the apiserver does: a missing property with a default gets it
  (and is then defaulted itself), objects and arrays of objects recurse; fields the schema does
  not know are pruned unless it preserves unknown fields. The emulator reads the same CRD file
  the tests install on a real cluster (crds/), so both default alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Schema = dict[str, Any]
KEPT = ("apiVersion", "kind", "metadata")  # never pruned: the apiserver owns them


def from_schema(value: Any, schema: Schema) -> Any:
    """``value`` with the schema's defaults filled in and unknown fields pruned, in place."""
    if isinstance(value, dict) and schema.get("type", "object") == "object":
        properties: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key in list(value):
            if key in properties:
                continue
            if isinstance(extra, dict):
                from_schema(value[key], extra)
            elif not preserve and extra is not True and properties:
                del value[key]
        for key, child in properties.items():
            if key not in value and "default" in child:
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                from_schema(value[key], child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            from_schema(item, schema["items"])
    return value


def custom_resource(body: Obj, schema: Schema) -> Obj:
    """A custom object as stored: metadata and type meta kept, the rest walked by the schema."""
    kept = {key: body[key] for key in KEPT if key in body}
    walked = from_schema({k: v for k, v in body.items() if k not in KEPT}, schema)
    return {**kept, **walked}


# -- built-in kinds ------------------------------------------------------------------------------
def _container(container: Obj) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def _pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        _container(container)


def _deployment(body: Obj) -> None:
    spec = body.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


def _service(body: Obj) -> None:
    spec = body.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _pod(body: Obj) -> None:
    _pod_spec(body.setdefault("spec", {}))


def _autoscaler(body: Obj) -> None:
    body.setdefault("spec", {}).setdefault("minReplicas", 1)


BUILTIN: dict[str, Callable[[Obj], None]] = {
    "apps/v1/deployments": _deployment,
    "v1/services": _service,
    "v1/pods": _pod,
    "autoscaling/v2/horizontalpodautoscalers": _autoscaler,
}


def builtin(resource: str, body: Obj) -> Obj:
    """``body`` with the apiserver's defaults for built-in ``resource`` ("group/version/plural",
    the core group as "v1/plural"), in place; kinds not in the table are stored as sent."""
    defaulter = BUILTIN.get(resource)
    if defaulter is not None:
        defaulter(body)
    return body
