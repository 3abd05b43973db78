"""Exactly the Kubernetes API calls the platform makes, for RBAC to grant and tests to hold us to.

deploy/ writes its Role from this list and a test compares the two; another test records every
request the platform sends to the emulator and checks each is listed here and each entry is used.
So a new call in api.py means a new line here, in the same change. Namespaced resources only:
Canarist needs no cluster-wide rights (it never lists namespaces or reads CRDs).

Why each verb is needed:

- deployments get/create/patch: read the stable Deployment, create ``<app>-canary``, scale and
  re-template both (strategic-merge patches carrying resourceVersion, so a stale write is a 409),
  and unpause / pause again a paused Deployment it promotes (held.py).
- replicasets list: a paused Deployment whose template changed still runs its newest
  ReplicaSet's template; that template is the stable version (held.py).
- services get/create/patch: read the stable and preview Services, create ``<app>-canary``, and
  switch the active Service's selector (blue-green) or pin it to the stable version.
- pods list: the canary's pods, to report CrashLoopBackOff / image pull failures at once.
- events create: one Kubernetes Event per rollout transition, on the stable Deployment.
- httproutes get/patch: the Gateway API router writes its own rules into the user's HTTPRoute.
- ingresses get/create/patch/delete: the nginx router clones the stable Ingress into
  ``<ingress>-canary`` and removes that clone once the rollout is over.
- horizontalpodautoscalers list: is the stable Deployment scaled by an HPA? Then its size is the
  HPA's and never written (autoscaling.py). List, not get: the HPA's name is the user's choice.

``WATCH_PERMISSIONS`` are the GitOps watch's (gitops.py), a separate identity that changes no
workload: it lists and watches Deployments, lists their ReplicaSets to tell a held template from
the one that runs, and records a Warning Event on a Deployment it cannot start a canary for.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Permission:
    """One RBAC rule atom: verb on resource in API group ("" is the core group)."""

    api_group: str
    resource: str
    verb: str


def _rules(api_group: str, resource: str, *verbs: str) -> set[Permission]:
    return {Permission(api_group, resource, verb) for verb in verbs}


PERMISSIONS: frozenset[Permission] = frozenset(
    _rules("apps", "deployments", "get", "create", "patch")
    | _rules("apps", "replicasets", "list")
    | _rules("", "services", "get", "create", "patch")
    | _rules("", "pods", "list")
    | _rules("", "events", "create")
    | _rules("gateway.networking.k8s.io", "httproutes", "get", "patch")
    | _rules("networking.k8s.io", "ingresses", "get", "create", "patch", "delete")
    | _rules("autoscaling", "horizontalpodautoscalers", "list")
)

WATCH_PERMISSIONS: frozenset[Permission] = frozenset(
    _rules("apps", "deployments", "list", "watch")
    | _rules("apps", "replicasets", "list")
    | _rules("", "events", "create")
)
