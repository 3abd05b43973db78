"""Kubernetes Events on the stable Deployment, one per transition of a rollout.

``kubectl describe deployment checkout`` then tells the rollout's story beside the controller's
own events: CanaryStarted, CanaryWeightSet, CanaryScaled, ActiveSwitched, OldScaledDown,
Promoting, RollingBack (a Warning). The platform emits one when an apply changes what the rollout
wants (``Desired``), never on the re-asserts the engine sends at every wake-up.

Events are best effort: the audit trail in the store is the record, so a failed Event is logged
and the rollout carries on.
"""

from __future__ import annotations

import logging
import socket
import uuid
from datetime import UTC, datetime

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


def emit(kube: Kube, target: Target, stable: Obj, action: PlatformAction, desired: Desired) -> None:
    """Record the transition ``action`` made as an Event on the stable Deployment."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = reason_of(action)
    metadata = stable.get("metadata", {})
    involved = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": target.app,
        "namespace": target.namespace,
        **({"uid": metadata["uid"]} if metadata.get("uid") else {}),
    }
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{target.app}.{uuid.uuid4().hex[:16]}",
            "namespace": target.namespace,
            "labels": target.stamp("", owned=True)["labels"],
        },
        "involvedObject": involved,
        "reason": reason,
        "message": describe(action, desired, target),
        "type": "Warning" if isinstance(action, Rollback) else "Normal",
        "action": reason,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        kube.create(EVENTS, target.namespace, body)
    except (WorkerError, TemporaryError, AlreadyExists) as exc:
        log.warning("could not record Event %s for %s: %s", reason, target.describe(), exc)
