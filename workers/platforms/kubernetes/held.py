"""A paused Deployment holding a new template: what its pods run, and how a promotion releases it.

GitOps users change the image in Git; Argo CD or Flux (or kubectl apply) writes the new pod
template into the Deployment. To analyse the new version before every pod runs it, the opted-in
Deployment is paused (``spec.paused: true``, in the user's manifest): the Deployment controller
then keeps the old ReplicaSet serving (it still scales it) and creates no ReplicaSet for the new
template. So the Deployment "holds" a template no pod runs, and the stable version is the
template of its newest ReplicaSet, found by owner reference and the controller's
``deployment.kubernetes.io/revision`` annotation.

This is Argo CD's and Flux's own object kept as the source of truth: Flagger instead copies the
Deployment into ``<app>-primary`` and scales the user's to zero, and Argo Rollouts replaces it
with a Rollout resource (or points one at it with ``workloadRef`` and scales it to zero); both
leave the live Deployment differing from Git or owned by another controller. Here the live
object stays the user's, equal to Git but for the brief unpause of a promotion.

``serving_view`` gives the platform the Deployment as its pods run it: ``spec.template`` the
serving ReplicaSet's, ``status.updatedReplicas`` that ReplicaSet's pods; the held template is
kept beside it (``held_template``) for the canary. Every other module reads the stable through
it, so the baseline, the rollback and the "is it promoted" checks need no special case.

``release`` is the promotion: unpause so the controller rolls the held template out, wait until
it has, pause again (so the live object and Git agree: no endless OutOfSync). It unpauses only a
Deployment that holds this rollout's version and images: a newer change written meanwhile is
never rolled out unanalysed. An abort does nothing here: the Deployment stays paused, the old
ReplicaSet keeps serving, and reverting the image in Git is the user's. Only an abort that comes
while the promotion has it unpaused finds it otherwise: the rollback templates it back to the
old version like any stable it changed, and ``hold`` pauses it again once that runs at full
size, so the next change in Git waits for its own canary instead of reaching every pod at once.
"""

from __future__ import annotations

import copy
from typing import Any

from workers.platforms.base import Failed, NotYet, Readiness, Ready
from workers.platforms.kubernetes.api import DEPLOYMENTS, REPLICASETS, Kube, Obj

REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"
HELD = "canarist.dev/held-template"  # a key of the view only, never written to the cluster


def paused(deployment: Obj) -> bool:
    return bool(deployment.get("spec", {}).get("paused"))


def revision(replica_set: Obj) -> int:
    annotations = replica_set.get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def replica_sets(kube: Kube, deployment: Obj) -> list[Obj]:
    """The ReplicaSets the Deployment controls, newest revision first."""
    metadata = deployment.get("metadata", {})
    selector = (deployment.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    owned = [
        replica_set
        for replica_set in kube.list(REPLICASETS, metadata.get("namespace", ""), selector)
        if any(
            owner.get("kind") == "Deployment"
            and owner.get("controller")
            and (owner.get("uid") == metadata.get("uid") or not metadata.get("uid"))
            and owner.get("name") == metadata.get("name")
            for owner in replica_set.get("metadata", {}).get("ownerReferences") or []
        )
    ]
    return sorted(owned, key=revision, reverse=True)


def without_hash(template: dict[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's template as the Deployment wrote it: the controller adds the hash label."""
    found = copy.deepcopy(template)
    labels = (found.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH, None)
    return found


def serving(kube: Kube, deployment: Obj) -> Obj | None:
    """The ReplicaSet whose template runs while the Deployment holds another one, or None when
    it holds nothing (not paused, or its newest ReplicaSet has its template, or it has none)."""
    if not paused(deployment):
        return None
    sets = replica_sets(kube, deployment)
    if not sets:
        return None
    newest = sets[0]
    template = deployment.get("spec", {}).get("template") or {}
    if without_hash(newest.get("spec", {}).get("template") or {}) == template:
        return None
    return newest


def serving_view(kube: Kube, deployment: Obj) -> Obj:
    """The Deployment as its pods run it (see the module docstring); itself when nothing is held."""
    replica_set = serving(kube, deployment)
    if replica_set is None:
        return deployment
    view = copy.deepcopy(deployment)
    view["spec"]["template"] = without_hash(replica_set.get("spec", {}).get("template") or {})
    status = dict(view.get("status") or {})
    status["updatedReplicas"] = (replica_set.get("status") or {}).get("replicas") or 0
    view["status"] = status
    view[HELD] = copy.deepcopy(deployment.get("spec", {}).get("template") or {})
    return view


def held_template(view: Obj) -> dict[str, Any] | None:
    """The template a paused Deployment holds and no pod runs yet (None: it holds none)."""
    template = view.get(HELD)
    return template if isinstance(template, dict) else None


def release(
    kube: Kube, view: Obj, runs_new: bool, holds_new: bool, rolled: Readiness, write: bool
) -> Readiness | None:
    """Promote a Deployment found paused: None once its pods run the new template and it is
    paused again. ``runs_new``: the view (what pods run) is the new version; ``holds_new``: the
    Deployment's own template is (checked before it is unpaused); ``rolled``: whether the view
    is rolled out at its size."""
    metadata = view.get("metadata", {})
    namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
    if runs_new and isinstance(rolled, Ready):
        if paused(view):
            return None
        if write:
            _set_paused(kube, namespace, name, True)
        return NotYet(f"Deployment {name} runs the new version; pausing it again")
    if not holds_new:
        return Failed(
            f"Deployment {namespace}/{name} no longer holds this rollout's version: its template "
            "changed during the promotion (the change gets its own rollout)"
        )
    # Paused while not rolled out: not yet released, or paused again half-way by a GitOps tool
    # correcting drift (Git says paused: true); either way the rollout goes on.
    if write and paused(view):
        _set_paused(kube, namespace, name, False)
    return (
        rolled
        if runs_new and not isinstance(rolled, Ready)
        else NotYet(f"Deployment {name} is rolling the promoted template out")
    )


def hold(kube: Kube, view: Obj, rolled: Readiness, write: bool) -> Readiness | None:
    """Roll back a Deployment found paused: None once it is paused again. A promotion the abort
    interrupted had unpaused it; it is paused only once ``rolled`` (the old version at its size)
    is Ready, so the pause never freezes the rollback half-way."""
    if paused(view):
        return None
    if not isinstance(rolled, Ready):
        return rolled
    metadata = view.get("metadata", {})
    name = metadata.get("name", "")
    if write:
        _set_paused(kube, metadata.get("namespace", ""), name, True)
    return NotYet(f"Deployment {name} runs the previous version again; pausing it again")


def _set_paused(kube: Kube, namespace: str, name: str, value: bool) -> None:
    def change(current: Obj) -> Obj | None:
        if paused(current) == value:
            return None
        return {"spec": {"paused": value}}

    kube.modify(DEPLOYMENTS, namespace, name, change)
