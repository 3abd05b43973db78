"""What the base installs runs the way Canarist needs: replicas, probes, limits, settings, network.

These read the rendered base (tests/deploy/manifests.py) and check it against the code it runs:
the variables each container sets are ones the code reads, and load into the settings; the
probes hit routes and ports that exist; the network policies let each process reach the
addresses its own settings name, and nothing reach Redis but Canarist.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import pytest

from canarist.settings import Settings
from tests.deploy.manifests import (
    DEPLOY,
    EXAMPLES,
    container_env,
    load_documents,
    pod_specs,
    render,
    variables_read_by_code,
)

BASE = render(DEPLOY / "base")
IMAGE = "canarist:0.1.0"
DEFAULT_PORTS = {"redis": 6379, "http": 80, "https": 443}


def workload(component: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(workload, pod spec, its one container) of a component."""
    for found, pod in pod_specs(BASE):
        if found["metadata"]["labels"]["app.kubernetes.io/component"] == component:
            (container,) = pod["containers"]
            return found, pod, container
    raise KeyError(component)


def port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or DEFAULT_PORTS[parts.scheme]


def test_replicas_and_update_strategies() -> None:
    assert workload("api")[0]["spec"]["replicas"] == 2
    assert workload("worker")[0]["spec"]["replicas"] >= 1
    beat = workload("beat")[0]
    assert beat["spec"]["replicas"] == 2, "one beat dying must not stop the reconciler"
    assert beat["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    spread = beat["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = spread["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    redis = workload("redis")[0]
    assert (redis["kind"], redis["spec"]["replicas"]) == ("StatefulSet", 1)


def test_redis_keeps_an_append_only_file_on_its_volume() -> None:
    redis, _, container = workload("redis")
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    data_dir = args[args.index("--dir") + 1]
    claims = {claim["metadata"]["name"] for claim in redis["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[data_dir] in claims


@pytest.mark.parametrize("component", ["api", "worker", "beat", "redis", "watch", "load"])
def test_every_container_is_locked_down_and_bounded(component: str) -> None:
    _, pod, container = workload(component)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])
    if component != "redis":
        assert container["image"] == IMAGE
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "a writable /tmp on a read-only root"


def test_the_api_probes_its_health_route_on_the_port_it_listens_on() -> None:
    _, _, container = workload("api")
    args = container["args"]
    assert args[0] == "api"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    port = int(args[args.index("--port") + 1])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/healthz"
    assert named[readiness["httpGet"]["port"]] == port
    assert named[liveness["tcpSocket"]["port"]] == port


def test_the_worker_probes_its_metrics_port_and_answers_pings() -> None:
    _, _, container = workload("worker")
    env = container_env(BASE, workload("worker")[0], container)
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named[container["readinessProbe"]["httpGet"]["port"]] == int(
        env["CANARIST_WORKER_METRICS_PORT"]
    )
    command = " ".join(container["livenessProbe"]["exec"]["command"])
    assert "celery -A workers.celery_app inspect ping" in command
    assert container["args"][:2] == ["worker", "--pool=solo"]


def test_the_beat_liveness_watches_the_schedule_file_beat_writes() -> None:
    _, _, container = workload("beat")
    (schedule,) = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--schedule=")]
    assert schedule.startswith("/tmp/")
    assert f"glob.glob('{schedule}*')" in container["livenessProbe"]["exec"]["command"][-1]


@pytest.mark.parametrize("component", ["api", "worker", "beat", "watch", "load"])
def test_every_variable_a_container_sets_is_read_and_loads(
    component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    found, _, container = workload(component)
    env = container_env(BASE, found, container)
    unread = sorted(set(env) - variables_read_by_code())
    assert not unread, f"{component} sets variables no code reads: {unread}"
    secret_refs = [s["secretRef"] for s in container.get("envFrom") or [] if "secretRef" in s]
    assert all(ref == {"name": "canarist-secrets", "optional": True} for ref in secret_refs)
    for name in [n for n in os.environ if n.startswith("CANARIST_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.redis.url == "redis://canarist-redis:6379/0"


def test_a_variable_no_code_reads_would_be_caught() -> None:
    read = variables_read_by_code()
    assert {"CANARIST_REDIS__URL", "CANARIST_ALERT_ROUTES", "CANARIST_REPORT_SECRET"} <= read
    assert "CANARIST_REDIS_URL" not in read  # one underscore: silently ignored by the settings


def test_the_example_secret_holds_only_read_variables_and_placeholders_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Applied unchanged, the example Secret stops the API at start-up instead of opening it."""
    (secret,) = load_documents(EXAMPLES / "canarist-secrets.yaml")
    assert secret["metadata"]["name"] == "canarist-secrets"
    values = secret["stringData"]
    assert set(values) <= variables_read_by_code()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name.removeprefix("CANARIST_").lower()):
            Settings()
        monkeypatch.delenv(name)


def selected(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(key) == value for key, value in wanted.items())


def egress_ports(component: str) -> set[int]:
    (policy,) = [p for p in BASE.of_kind("NetworkPolicy") if selected(p, pod_labels(component))]
    rules = policy["spec"].get("egress") or []
    return {port["port"] for rule in rules for port in rule.get("ports", [])}


def pod_labels(component: str) -> dict[str, str]:
    labels: dict[str, str] = workload(component)[0]["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("component", ["api", "worker", "beat", "redis", "watch", "load"])
def test_every_pod_is_isolated_by_exactly_one_network_policy(component: str) -> None:
    policies = [p for p in BASE.of_kind("NetworkPolicy") if selected(p, pod_labels(component))]
    assert len(policies) == 1
    assert set(policies[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_only_canarist_pods_reach_redis() -> None:
    (policy,) = [p for p in BASE.of_kind("NetworkPolicy") if selected(p, pod_labels("redis"))]
    (rule,) = policy["spec"]["ingress"]
    assert [port["port"] for port in rule["ports"]] == [6379]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}, "same namespace only: no namespaceSelector, no ipBlock"
    for component in ("api", "worker", "beat", "watch", "load"):
        assert selected({"spec": {"podSelector": peer["podSelector"]}}, pod_labels(component))
    assert policy["spec"]["egress"] == []


def test_the_api_port_is_open_to_all() -> None:
    (policy,) = [p for p in BASE.of_kind("NetworkPolicy") if selected(p, pod_labels("api"))]
    (rule,) = policy["spec"]["ingress"]
    assert "from" not in rule
    assert [port["port"] for port in rule["ports"]] == [8000]


def test_each_process_may_reach_what_its_settings_name() -> None:
    config = BASE.find("ConfigMap", "canarist-settings")["data"]
    redis, prometheus = (
        port_of(config["CANARIST_REDIS__URL"]),
        port_of(config["CANARIST_PROMETHEUS__URL"]),
    )
    routes = Settings.model_validate(
        {"alert_routes": json.loads(config["CANARIST_ALERT_ROUTES"])}
    ).alert_routes
    alertmanager = {port_of(route.url) for route in routes.values()}
    assert {53, redis, prometheus, 443, 6443} | alertmanager <= egress_ports("worker")
    assert {53, redis, prometheus} <= egress_ports("api")
    assert egress_ports("beat") == {53, redis}
    assert egress_ports("watch") == {53, redis, 443, 6443}
    assert {53, redis} <= egress_ports("load")  # and the apps' pods, on their own ports


def test_every_service_selects_pods_and_names_their_ports() -> None:
    for service in BASE.of_kind("Service"):
        matches = [
            (found, pod)
            for found, pod in pod_specs(BASE)
            if all(
                found["spec"]["template"]["metadata"]["labels"].get(k) == v
                for k, v in service["spec"]["selector"].items()
            )
        ]
        assert len(matches) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in matches[0][1]["containers"] for p in c.get("ports", [])}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports
