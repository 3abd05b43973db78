"""The Deployment controller's ReplicaSets, played on the emulator for the GitOps watch's tests.

The real controller keeps one ReplicaSet per pod template, owned by the Deployment (owner
reference), its template carrying a ``pod-template-hash`` label and numbered by the
``deployment.kubernetes.io/revision`` annotation; a paused Deployment gets no ReplicaSet for a
new template, and its newest one keeps serving at the Deployment's size. ``Cluster.settle``
(kube_stack.py) asks ``ReplicaSetController.play`` for each Deployment, with a fresh controller
per settle (the ReplicaSets are listed once per settle). Rollouts are instant, as the rest of
``settle`` plays them. On a real cluster none of this runs: the real controller does it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubernetes import client


class ReplicaSetController:
    """See the module docstring."""

    def __init__(self, apps: client.AppsV1Api, namespace: str) -> None:
        self.apps, self.namespace = apps, namespace
        self._listed: list[dict[str, Any]] | None = None

    def play(self, deployment: dict[str, Any]) -> dict[str, Any] | None:
        """Keep a ReplicaSet per pod template, owned by the Deployment and numbered by the
        ``deployment.kubernetes.io/revision`` annotation, as the controller does, and roll out
        at once: the current template's set at full size, the others at 0. A paused Deployment
        whose template changed gets no new set: its newest one keeps serving at the
        Deployment's size. Returns that held Deployment's status (None: the usual one)."""
        spec, metadata = deployment["spec"], deployment["metadata"]
        template, replicas = spec["template"], spec.get("replicas", 1)
        sets = self._replica_sets_of(deployment)
        current = next((rs for rs in sets if _without_hash(rs) == template), None)
        newest = max(sets, key=_revision, default=None)
        if spec.get("paused") and (current is None or current is not newest):
            for rs in sets:
                self._scale_replica_set(rs, replicas if rs is newest else 0)
            serving = replicas if newest is not None else 0
            return {
                "observedGeneration": metadata.get("generation", 1),
                "replicas": serving,
                "updatedReplicas": 0,
                "readyReplicas": serving,
                "availableReplicas": serving,
            }
        if current is None:
            current = self._new_replica_set(deployment, _revision(newest) + 1 if newest else 1)
        elif current is not newest:  # back to an older template: it becomes the newest
            self._revise_replica_set(current, _revision(newest) + 1)
        for rs in [*sets, current]:
            self._scale_replica_set(rs, replicas if rs is current else 0)
        return None

    def _replica_sets_of(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        if self._listed is None:
            listing = self.apps.list_namespaced_replica_set(self.namespace, _preload_content=False)
            self._listed = json.loads(listing.data).get("items") or []
        name = deployment["metadata"]["name"]
        return [
            rs
            for rs in self._listed
            if any(
                owner.get("kind") == "Deployment" and owner.get("name") == name
                for owner in rs["metadata"].get("ownerReferences") or []
            )
        ]

    def _new_replica_set(self, deployment: dict[str, Any], revision: int) -> dict[str, Any]:
        metadata, spec = deployment["metadata"], deployment["spec"]
        digest = hashlib.sha256(json.dumps(spec["template"], sort_keys=True).encode())
        pod_hash = digest.hexdigest()[:10]
        template = json.loads(json.dumps(spec["template"]))
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": metadata["name"],
                 "uid": metadata.get("uid", ""), "controller": True}  # fmt: skip
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{metadata['name']}-{pod_hash}",
                "namespace": self.namespace,
                "labels": template["metadata"]["labels"],
                "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                "ownerReferences": [owner],
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {**spec["selector"]["matchLabels"],
                                             "pod-template-hash": pod_hash}},
                "template": template,
            },
        }  # fmt: skip
        created = self.apps.create_namespaced_replica_set(
            self.namespace, body, _preload_content=False
        )
        found: dict[str, Any] = json.loads(created.data)
        self._listed = None
        return found

    def _revise_replica_set(self, rs: dict[str, Any], revision: int) -> None:
        note = {"metadata": {"annotations": {"deployment.kubernetes.io/revision": str(revision)}}}
        self.apps.patch_namespaced_replica_set(
            rs["metadata"]["name"], self.namespace, note,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def _scale_replica_set(self, rs: dict[str, Any], replicas: int) -> None:
        if (
            rs["spec"].get("replicas") == replicas
            and (rs.get("status") or {}).get("replicas") == replicas
        ):
            return
        name = rs["metadata"]["name"]
        merge = "application/merge-patch+json"
        self.apps.patch_namespaced_replica_set(
            name, self.namespace, {"spec": {"replicas": replicas}}, _content_type=merge
        )
        status = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}
        self.apps.patch_namespaced_replica_set_status(
            name, self.namespace, {"status": status}, _content_type=merge
        )


def _revision(rs: dict[str, Any] | None) -> int:
    annotations = (rs or {}).get("metadata", {}).get("annotations") or {}
    return int(annotations.get("deployment.kubernetes.io/revision", "0"))


def _without_hash(rs: dict[str, Any]) -> dict[str, Any]:
    template = json.loads(json.dumps(rs["spec"]["template"]))
    template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    found: dict[str, Any] = template
    return found
