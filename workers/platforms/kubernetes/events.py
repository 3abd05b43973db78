"""Kubernetes Events on the stable Deployment, one per transition of a rollout.

``kubectl describe deployment checkout`` then tells the rollout's story beside the controller's
own events: CanaryStarted, CanaryWeightSet, CanaryScaled, ActiveSwitched, OldScaledDown,
Promoting, RollingBack (a Warning). The platform emits one when an apply changes what the rollout
wants (``Desired``), never on the re-asserts the engine sends at every wake-up.

Events are named as client-go's recorder names them, ``<app>.<nanoseconds since the epoch in
hex>`` (16 digits, zero-padded), so that names sort as the events were made: a real apiserver
lists by name, and a reader that takes the list order (or ``kubectl get events`` sorted by name)
sees the story in order. Two events in the same nanosecond (or an old one left with the name)
get 409: the next try takes a later timestamp.

Events are best effort: the audit trail in the store is the record, so a failed Event is logged
and the rollout carries on.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from workers.actions import (
    EnsureCanary,
    PlatformAction,
    Promote,
    Rollback,
    ScaleDownOld,
    ScaleNew,
    SetTraffic,
    SwitchActive,
)
from workers.errors import TemporaryError, WorkerError
from workers.platforms.kubernetes.api import EVENTS, AlreadyExists, Kube, Obj
from workers.platforms.kubernetes.desired import Desired
from workers.platforms.kubernetes.target import Target

log = logging.getLogger(__name__)
COMPONENT = "canarist"
NAME_ATTEMPTS = 3


def reason_of(action: PlatformAction) -> str:
    match action:
        case EnsureCanary():
            return "CanaryStarted"
        case SetTraffic():
            return "CanaryWeightSet"
        case ScaleNew():
            return "CanaryScaled"
        case SwitchActive():
            return "ActiveSwitched"
        case ScaleDownOld():
            return "OldScaledDown"
        case Promote():
            return "Promoting"
        case Rollback():
            return "RollingBack"
    raise TypeError(f"not a platform action: {action!r}")


def describe(action: PlatformAction, desired: Desired, target: Target) -> str:
    head = f"rollout {target.rollout} (attempt {target.attempt}) of {target.version}"
    match action:
        case SetTraffic(weight, match):
            audience = f" plus {len(match)} matched audience(s)" if match else ""
            return f"{head}: {weight}% of traffic to the canary{audience}"
        case ScaleNew():
            return f"{head}: canary at {desired.canary_replicas} replica(s)"
        case SwitchActive():
            return f"{head}: the active Service now selects the new version"
        case ScaleDownOld():
            return f"{head}: the old version is scaled down"
        case Promote():
            return f"{head}: promoting to stable"
        case Rollback(reason):
            return f"{head}: rolling back: {reason}"[:1000]
    return f"{head}: canary Deployment {target.canary} ready for the new version"


def deployment_event(
    deployment: Obj, reason: str, message: str, kind: str, component: str = COMPONENT
) -> Obj:
    """An Event about ``deployment`` (a Deployment as read) without its name: the platform's
    transitions and the GitOps watch's refusals say who, what and when alike."""
    metadata = deployment.get("metadata", {})
    namespace = metadata.get("namespace", "")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": namespace},
        "involvedObject": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": metadata.get("name", ""),
            "namespace": namespace,
            **({"uid": metadata["uid"]} if metadata.get("uid") else {}),
        },
        "reason": reason,
        "message": message[:1000],
        "type": kind,
        "action": reason,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def emit(kube: Kube, target: Target, stable: Obj, action: PlatformAction, desired: Desired) -> None:
    """Record the transition ``action`` made as an Event on the stable Deployment."""
    reason = reason_of(action)
    named = {"metadata": {**stable.get("metadata", {}), "name": target.app,
                          "namespace": target.namespace}}  # fmt: skip
    kind = "Warning" if isinstance(action, Rollback) else "Normal"
    body = deployment_event(named, reason, describe(action, desired, target), kind)
    event_metadata: dict[str, Any] = body["metadata"]
    event_metadata["labels"] = target.stamp("", owned=True)["labels"]
    stamp = time.time_ns()
    for _ in range(NAME_ATTEMPTS):
        event_metadata["name"] = event_name(target.app, stamp)
        try:
            kube.create(EVENTS, target.namespace, body)
            return
        except AlreadyExists:
            stamp = max(time.time_ns(), stamp + 1)  # taken: a later name still sorts after it
        except (WorkerError, TemporaryError) as exc:
            log.warning("could not record Event %s for %s: %s", reason, target.describe(), exc)
            return
    log.warning("could not record Event %s for %s: its names are taken", reason, target.describe())


def event_name(involved: str, nanoseconds: int) -> str:
    """``<involved>.<16 hex digits>``: lexical order is time order (see the module docstring)."""
    return f"{involved}.{nanoseconds:016x}"
