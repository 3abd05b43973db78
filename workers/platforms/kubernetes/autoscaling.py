"""A HorizontalPodAutoscaler on the stable Deployment: the HPA owns its size, Canarist follows.

An HPA (autoscaling/v2) whose ``scaleTargetRef`` is the stable Deployment writes that
Deployment's ``spec.replicas`` as the load moves. Two writers of one field fight: each undoes the
other every few seconds. So while an HPA targets the stable, Canarist never writes the stable's
``spec.replicas``, and sizes everything from it as found on every call instead of from the size
the rollout first recorded (the baseline):

- the canary is ``ceil(current * weight / 100)`` pods (at full size on promotion: ``current``).
  The HPA's selector is the stable Deployment's, which canary pods also match (workloads.py), so
  its metrics average over both versions: its count is the whole app's, as Argo Rollouts' is;
- ``rolling`` is refused, naming the HPA: its batches scale the stable down as the canary grows,
  which is the fight itself (an abort of a rolling rollout already under way still completes);
- blue-green's retirement of the old side leaves that side's size to the HPA (scaling it to 0
  would switch the HPA off for that Deployment); the promotion that follows re-templates it;
- a promotion re-templates the stable without touching its size, and a rollback never restores
  the size the rollout found over the one the HPA has set since.

The HPA is looked up by listing the namespace's HPAs (its name is the user's choice), on every
call: one added or removed mid-rollout is followed from the next call on.
"""

from __future__ import annotations

from dataclasses import replace

from analyzer.policy.strategy import StrategyType
from workers.platforms.base import PlatformError
from workers.platforms.kubernetes.api import AUTOSCALERS, Kube, Obj
from workers.platforms.kubernetes.desired import Baseline
from workers.platforms.kubernetes.target import Target


def autoscaler_of(kube: Kube, target: Target) -> str | None:
    """The name of the HorizontalPodAutoscaler that scales the stable Deployment, or None."""
    for autoscaler in kube.list(AUTOSCALERS, target.namespace, {}):
        ref = autoscaler.get("spec", {}).get("scaleTargetRef") or {}
        group = str(ref.get("apiVersion", "apps/v1")).split("/")[0]
        if ref.get("kind") == "Deployment" and ref.get("name") == target.app and group == "apps":
            name: str = autoscaler.get("metadata", {}).get("name", "?")
            return name
    return None


def refuse_fighting(autoscaler: str | None, target: Target) -> None:
    """A strategy that scales the stable itself cannot share it with an HPA."""
    if autoscaler is not None and target.strategy == StrategyType.ROLLING:
        raise PlatformError(
            f"Deployment {target.namespace}/{target.app} is scaled by HorizontalPodAutoscaler "
            f"{target.namespace}/{autoscaler}: the rolling strategy scales the stable down batch "
            "by batch and would fight it; use canary or blue_green, or remove the HPA"
        )


def sizing(baseline: Baseline, stable: Obj, autoscaler: str | None) -> Baseline:
    """The baseline to size from: as recorded, or with the HPA's current count for replicas."""
    if autoscaler is None:
        return baseline
    current = stable.get("spec", {}).get("replicas", 1)
    return replace(baseline, replicas=int(current)) if current else baseline
