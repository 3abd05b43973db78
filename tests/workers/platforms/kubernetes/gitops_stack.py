"""What a GitOps user does to a Deployment, and what the GitOps tests read back from the cluster.

A user (or Argo CD, or Flux) opts a Deployment in with annotations and ``spec.paused: true`` and
later writes a new image and version label into its pod template: ``opt_in`` and ``change``
apply those edits as the helper client. ``running`` reads what the pods run the way one would on
a real cluster: the templates of the Deployment's ReplicaSets that have pods.
"""

from __future__ import annotations

import json
from typing import Any

from tests.workers.platforms.kubernetes.kube_stack import Cluster

MERGE = "application/merge-patch+json"


def opt_in(cluster: Cluster, app: str, policy: str, paused: bool = True, **notes: str) -> None:
    annotations = {"canarist.dev/policy": policy, **notes}
    body = {"metadata": {"annotations": annotations}, "spec": {"paused": paused}}
    cluster.apps.patch_namespaced_deployment(app, cluster.namespace, body, _content_type=MERGE)
    cluster.settle()


def change(cluster: Cluster, app: str, image: str, version: str | None) -> None:
    """A new image and version label in the pod template, as a commit synced by Argo CD would."""
    deployment = cluster.get("deployment", app)
    assert deployment is not None
    template = deployment["spec"]["template"]
    containers = [{**c, "image": image} for c in template["spec"]["containers"]]
    labels = {"version": version}  # a JSON merge patch: None removes the label
    body = {
        "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}}
    }
    cluster.apps.patch_namespaced_deployment(app, cluster.namespace, body, _content_type=MERGE)
    cluster.settle()


def replica_sets(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    listing = cluster.apps.list_namespaced_replica_set(cluster.namespace, _preload_content=False)
    return [
        rs
        for rs in json.loads(listing.data).get("items") or []
        if any(
            owner.get("kind") == "Deployment" and owner.get("name") == app
            for owner in rs["metadata"].get("ownerReferences") or []
        )
    ]


def running(cluster: Cluster, app: str) -> set[tuple[str, str]]:
    """(version label, first image) of every ReplicaSet of ``app`` asked for pods."""
    found = set()
    for rs in replica_sets(cluster, app):
        if (rs["spec"].get("replicas") or 0) > 0:
            template = rs["spec"]["template"]
            image = template["spec"]["containers"][0]["image"]
            found.add((template["metadata"]["labels"].get("version", ""), image))
    return found
