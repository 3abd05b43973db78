"""The workers' RBAC grants exactly the Kubernetes calls the platform makes, where it is bound.

``workers.platforms.kubernetes.permissions.PERMISSIONS`` lists every (API group, resource, verb)
the platform calls; the ClusterRole in deploy/base/rbac.yaml must grant each and nothing more,
with no wildcard. The rules are bound per namespace by RoleBindings only, to the workers'
service account only: no ClusterRoleBinding. The GitOps watch is the one other identity with
rights: ``WATCH_PERMISSIONS`` exactly, through a Role in each namespace it watches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from tests.deploy.manifests import DEPLOY, kustomizations, pod_specs, render
from workers.platforms.kubernetes.permissions import PERMISSIONS, WATCH_PERMISSIONS, Permission

ROLE = "canarist-worker"
WORKER_ACCOUNT = ("canarist-worker", "canarist")  # (name, namespace)
WATCH = "canarist-watch"
WATCH_ACCOUNT = ("canarist-watch", "canarist")
RULE_FIELDS = {"apiGroups", "resources", "verbs"}


def granted(rules: Iterable[dict[str, Any]]) -> set[Permission]:
    """Every (group, resource, verb) the rules grant; refuses what cannot be counted exactly."""
    permissions: set[Permission] = set()
    for index, rule in enumerate(rules):
        extra = set(rule) - RULE_FIELDS
        if extra:
            raise ValueError(f"rule {index}: {sorted(extra)} (resourceNames, URLs) not expected")
        for key in RULE_FIELDS:
            if "*" in rule.get(key, []) or not rule.get(key):
                raise ValueError(f"rule {index}: {key} is a wildcard or empty")
        permissions |= {
            Permission(group, resource, verb)
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
    return permissions


def test_the_cluster_role_grants_exactly_the_platforms_permissions() -> None:
    role = render(DEPLOY / "base").find("ClusterRole", ROLE)
    rules = granted(role["rules"])
    missing, extra = sorted(PERMISSIONS - rules), sorted(rules - PERMISSIONS)
    assert not missing, f"the platform makes calls RBAC refuses: {missing}"
    assert not extra, f"RBAC grants calls the platform never makes: {extra}"


@pytest.mark.parametrize(
    "rule",
    [
        {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]},
        {"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": []},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["x"]},
    ],
)
def test_wildcards_and_unexpected_rule_fields_are_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="rule 0"):
        granted([rule])


def test_a_permission_too_many_or_too_few_is_noticed() -> None:
    role = render(DEPLOY / "base").find("ClusterRole", ROLE)
    widened = [*role["rules"], {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    assert granted(widened) - PERMISSIONS == {Permission("", "secrets", "get")}
    assert PERMISSIONS - granted(role["rules"][1:])


def test_the_watch_role_grants_exactly_the_watch_permissions() -> None:
    rendering = render(DEPLOY / "examples" / "checkout")
    (role,) = rendering.of_kind("Role")
    assert (role["metadata"]["name"], role["metadata"]["namespace"]) == (WATCH, "shop")
    rules = granted(role["rules"])
    assert rules == WATCH_PERMISSIONS, sorted(rules ^ WATCH_PERMISSIONS)
    assert not {p for p in WATCH_PERMISSIONS if p.verb not in ("list", "watch", "create")}
    config = rendering.find("ConfigMap", "canarist-settings")["data"]
    assert config["CANARIST_WATCH_NAMESPACES"] == "shop", "the namespace the Role is in"


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: d.name)
def test_rights_are_bound_per_namespace_to_the_workers_only(directory: Any) -> None:
    rendering = render(directory)
    assert not rendering.of_kind("ClusterRoleBinding"), "no cluster-wide grant"
    assert [r["metadata"]["name"] for r in rendering.of_kind("ClusterRole")] == [ROLE]
    roles = rendering.of_kind("Role")
    assert [r["metadata"]["name"] for r in roles] in ([], [WATCH]), "only the watch's Role"
    for binding in rendering.of_kind("RoleBinding"):
        if binding["roleRef"]["kind"] == "Role":  # the watch's, in the namespace it watches
            assert binding["roleRef"]["name"] == WATCH
            subjects = [(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]]
            assert subjects == [("ServiceAccount", *WATCH_ACCOUNT)]
            assert binding["metadata"]["namespace"] != "canarist", "bound where apps run"
            continue
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": ROLE,
        }
        subjects = [(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]]
        assert subjects == [("ServiceAccount", *WORKER_ACCOUNT)]
        assert binding["metadata"]["namespace"] != "canarist", "bound where apps run"


def test_only_the_workers_and_the_watch_get_a_kubernetes_token() -> None:
    rendering = render(DEPLOY / "base")
    accounts = {
        sa["metadata"]["name"]: sa.get("automountServiceAccountToken", True)
        for sa in rendering.of_kind("ServiceAccount")
    }
    assert accounts == {"canarist-worker": True, "canarist-watch": True, "canarist": False}
    seen = set()
    for workload, pod in pod_specs(rendering):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        seen.add(component)
        if component == "worker":
            assert pod["serviceAccountName"] == WORKER_ACCOUNT[0]
        elif component == "watch":
            assert pod["serviceAccountName"] == WATCH_ACCOUNT[0]
        else:
            assert pod["serviceAccountName"] == "canarist", component
            assert pod["automountServiceAccountToken"] is False, component
    assert seen == {"api", "worker", "beat", "redis", "watch", "load"}
