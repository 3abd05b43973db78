"""What the platform relies on from a kube-apiserver, held on the emulator and on a real cluster.

The same assertions run against both (``CANARIST_TEST_KUBECONFIG``), so a gap between kmock's
emulator and a real apiserver shows here first, not as a platform test that passes on one only:
the metadata a write answers with, the defaults stored (built-in kinds, and the HTTPRoute CRD of
crds/), and the order of a list.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.workers.platforms.kubernetes import defaulting
from tests.workers.platforms.kubernetes.kube_stack import PAUSE, Cluster

pytestmark = pytest.mark.kubernetes
MERGE = "application/merge-patch+json"


def created_deployment(cluster: Cluster, name: str, image: str = PAUSE) -> dict[str, Any]:
    container = {"name": name, "image": image, "ports": [{"containerPort": 8080}]}
    template = {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": cluster.namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
    }
    answer = cluster.apps.create_namespaced_deployment(
        cluster.namespace, body, _preload_content=False
    )
    found: dict[str, Any] = json.loads(answer.data)
    return found


def test_a_create_answers_with_generation_1_and_a_resource_version(
    cluster: Cluster, app: str
) -> None:
    created = created_deployment(cluster, app)
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["resourceVersion"]
    assert created["metadata"]["uid"]


def test_a_spec_patch_answers_with_the_next_generation_and_a_metadata_patch_does_not(
    cluster: Cluster, app: str
) -> None:
    created = created_deployment(cluster, app)
    answer = cluster.apps.patch_namespaced_deployment(
        app, cluster.namespace, {"metadata": {"annotations": {"a": "b"}}},
        _content_type=MERGE, _preload_content=False,
    )  # fmt: skip
    labelled = json.loads(answer.data)
    assert labelled["metadata"]["generation"] == 1
    assert labelled["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    answer = cluster.apps.patch_namespaced_deployment(
        app, cluster.namespace, {"spec": {"replicas": 3}}, _content_type=MERGE,
        _preload_content=False,
    )  # fmt: skip
    assert json.loads(answer.data)["metadata"]["generation"] == 2


def test_built_in_kinds_are_stored_with_the_apiservers_defaults(cluster: Cluster, app: str) -> None:
    created = created_deployment(cluster, app)
    spec = created["spec"]  # the answer to the create carries them already
    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod = spec["template"]["spec"]
    assert (pod["restartPolicy"], pod["dnsPolicy"]) == ("Always", "ClusterFirst")
    assert (pod["terminationGracePeriodSeconds"], pod["schedulerName"]) == (30, "default-scheduler")
    container = pod["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"  # a tag other than latest
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]

    cluster.service(f"{app}-svc", app)
    service = cluster.get("service", f"{app}-svc")
    assert service is not None
    cluster.core.patch_namespaced_service(
        f"{app}-svc", cluster.namespace, {"spec": {"ports": [{"name": "web", "port": 81}]}},
        _content_type=MERGE,
    )  # fmt: skip
    patched = cluster.get("service", f"{app}-svc")
    assert patched is not None  # a patch result is defaulted as a create is
    assert patched["spec"]["ports"] == [
        {"name": "web", "port": 81, "protocol": "TCP", "targetPort": 81}
    ]
    assert patched["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize(
    ("image", "policy"),
    [("nginx", "Always"), ("nginx:latest", "Always"), ("localhost:5000/nginx", "Always"),
     ("nginx:1.27", "IfNotPresent"), (f"{PAUSE}", "IfNotPresent")],
)  # fmt: skip
def test_the_pull_policy_defaults_by_tag(image: str, policy: str) -> None:
    body = defaulting.builtin("v1/pods", {"spec": {"containers": [{"name": "a", "image": image}]}})
    assert body["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_an_httproute_is_stored_with_the_crds_defaults_on_create_and_on_patch(
    cluster: Cluster, app: str
) -> None:
    cluster.http_route(app, app, extra_rules=[{"backendRefs": [{"name": "cdn", "port": 80}]}])
    route = cluster.get("httproute", app)
    assert route is not None
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}
    ]
    first, second = route["spec"]["rules"]
    assert first["backendRefs"] == [
        {"group": "", "kind": "Service", "name": app, "port": 80, "weight": 1}
    ]
    assert second["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]

    rules = [{"matches": [{"headers": [{"name": "x", "value": "1"}]}],
              "backendRefs": [{"name": app, "port": 80}]}]  # fmt: skip
    cluster.custom.patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", cluster.namespace, "httproutes", app,
        {"spec": {"rules": rules}}, _content_type=MERGE,
    )  # fmt: skip
    patched = cluster.get("httproute", app)
    assert patched is not None
    (rule,) = patched["spec"]["rules"]
    assert rule["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"type": "Exact", "name": "x", "value": "1"}],
        }
    ]
    assert rule["backendRefs"][0]["weight"] == 1
    assert cluster.route_weights(app) == [{app: 1}]


def test_a_list_is_sorted_by_name(cluster: Cluster, app: str) -> None:
    for suffix in ("c", "a", "b"):
        cluster.service(f"{app}-{suffix}", app)
    answer = cluster.core.list_namespaced_service(cluster.namespace, _preload_content=False)
    names = [item["metadata"]["name"] for item in json.loads(answer.data)["items"]]
    assert names == sorted(names)
    assert [name for name in names if name.startswith(f"{app}-")] == [f"{app}-{s}" for s in "abc"]


# -- the schema walk alone ----------------------------------------------------------------------
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "default": [{}],
                    "items": {
                        "type": "object",
                        "properties": {"size": {"type": "integer", "default": 1}},
                    },
                },
                "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def test_the_schema_walk_defaults_nested_arrays_and_prunes_unknown_fields() -> None:
    body = {
        "apiVersion": "x/v1",
        "metadata": {"name": "n", "anything": 1},
        "spec": {"items": [{"size": 3, "stray": True}, {}], "open": {"k": {"v": 1}},
                 "labels": {"a": "b"}, "unknown": 1},
    }  # fmt: skip
    stored = defaulting.custom_resource(body, SCHEMA)
    assert stored == {
        "apiVersion": "x/v1",
        "metadata": {"name": "n", "anything": 1},
        "spec": {"items": [{"size": 3}, {"size": 1}], "open": {"k": {"v": 1}},
                 "labels": {"a": "b"}},
    }  # fmt: skip
    assert defaulting.custom_resource({"spec": {}}, SCHEMA) == {"spec": {"items": [{"size": 1}]}}
