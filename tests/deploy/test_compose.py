"""docker-compose.yml runs what exists: files it mounts, commands, settings, health checks.

No Docker is needed: the file is read as Compose reads it (YAML merge keys included) and each
reference is checked against the repository: mounted files exist, each canarist command is a
CLI subcommand and matches the Kubernetes Deployment's, each CANARIST_* variable is one the code
reads and the set loads into the settings, Prometheus' and Alertmanager's configs pass their own
checkers (promtool, amtool: installed with the test stack) and name only services defined here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from canarist.cli import app as cli
from canarist.settings import Settings
from tests.deploy.manifests import DEPLOY, ROOT, pod_specs, render, variables_read_by_code

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
CANARIST_SERVICES = ("api", "worker", "beat")
LISTENS = {"redis": 6379, "prometheus": 9090, "alertmanager": 9093}


def listening_port(name: str) -> int:
    service = SERVICES[name]
    if name in LISTENS:
        return LISTENS[name]
    command, env = service["command"], service.get("environment") or {}
    if "--port" in command:
        return int(command[command.index("--port") + 1])
    return int(env["CANARIST_WORKER_METRICS_PORT"])


def test_the_services() -> None:
    assert set(SERVICES) == {"redis", "prometheus", "alertmanager", *CANARIST_SERVICES}


def test_every_mounted_file_and_the_build_context_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()
            assert service["image"] == "canarist:0.1.0"


def test_ports_are_published_on_loopback_only() -> None:
    published = [port for service in SERVICES.values() for port in service.get("ports") or []]
    assert published
    assert all(str(port).startswith("127.0.0.1:") for port in published), published


def test_every_service_has_a_health_check_and_waits_for_healthy_ones() -> None:
    for name, service in SERVICES.items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        for needed, condition in (service.get("depends_on") or {}).items():
            assert condition == {"condition": "service_healthy"}, name
            assert "healthcheck" in SERVICES[needed]
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    command = SERVICES["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    data_dir = command[command.index("--dir") + 1]
    volumes = [v.split(":") for v in SERVICES["redis"]["volumes"]]
    assert [source for source, target, *_ in volumes if target == data_dir] == ["redis-data"]


@pytest.mark.parametrize("name", CANARIST_SERVICES)
def test_each_canarist_command_exists_and_matches_its_deployment(name: str) -> None:
    command = SERVICES[name]["command"]
    result = CliRunner().invoke(cli, [command[0], "--help"])
    assert result.exit_code == 0, result.output
    deployments = {
        workload["metadata"]["labels"]["app.kubernetes.io/component"]: pod["containers"][0]
        for workload, pod in pod_specs(render(DEPLOY / "base"))
    }
    assert command == deployments[name]["args"], "compose and Kubernetes run the same process"


def test_an_unknown_command_would_be_caught() -> None:
    assert CliRunner().invoke(cli, ["wroker", "--help"]).exit_code != 0


@pytest.mark.parametrize("name", CANARIST_SERVICES)
def test_every_variable_is_read_and_the_set_loads(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {key: str(value) for key, value in SERVICES[name]["environment"].items()}
    unread = sorted(set(env) - variables_read_by_code())
    assert not unread, f"{name} sets variables no code reads: {unread}"
    for variable in [v for v in os.environ if v.startswith("CANARIST_")]:
        monkeypatch.delenv(variable)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    Settings()  # raises on any value the settings refuse
    urls = [url for value in env.values() for url in re.findall(r"[a-z]+://[^\s\"',}]+", value)]
    assert urls
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname == "127.0.0.1":
            assert url == env.get("CANARIST_PUBLIC_URL"), "only the browser's link is local"
            continue
        assert parts.hostname in SERVICES, f"{url}: no such service"
        assert parts.port == listening_port(str(parts.hostname)), url


def config_targets(path: Path) -> set[str]:
    """Every host:port named in a config file."""
    return set(re.findall(r"\b([a-z][a-z0-9-]*:\d+)\b", path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("service", "checker"),
    [("prometheus", ["promtool", "check", "config"]), ("alertmanager", ["amtool", "check-config"])],
)
def test_the_monitoring_configs_pass_their_checkers_and_name_our_services(
    service: str, checker: list[str]
) -> None:
    (mount,) = [v for v in SERVICES[service]["volumes"] if v.startswith("./")]
    path = ROOT / mount.split(":")[0]
    assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict)
    binary = shutil.which(checker[0]) or shutil.which(checker[0], path="/usr/bin:/usr/sbin")
    assert binary, f"{checker[0]} is missing: make test installs it with the test stack"
    command = [binary, *checker[1:], str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for target in config_targets(path):
        host, port = target.split(":")
        assert host in SERVICES, f"{path.name} names {host}, which compose does not define"
        assert int(port) == listening_port(host), target


def test_prometheus_scrapes_canarist_and_alerts_to_alertmanager() -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        target for job in config["scrape_configs"] for c in job["static_configs"]
        for target in c["targets"]
    }  # fmt: skip
    assert {"api:8000", f"worker:{listening_port('worker')}"} <= targets
    (alerting,) = config["alerting"]["alertmanagers"]
    assert alerting["static_configs"][0]["targets"] == ["alertmanager:9093"]


@pytest.mark.parametrize("name", ["api", "worker"])
def test_the_policy_directory_is_the_mounted_policies(name: str) -> None:
    service = SERVICES[name]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    assert mounts[service["environment"]["CANARIST_POLICY_DIR"]] == "./policies"


def k8s_container(component: str) -> dict[str, Any]:
    for workload, pod in pod_specs(render(DEPLOY / "base")):
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] == component:
            container: dict[str, Any] = pod["containers"][0]
            return container
    raise KeyError(component)


def squeezed(text: str) -> str:
    return " ".join(text.replace("$$", "$").split()).replace("[ ", "[")


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_the_health_checks_are_the_probes_the_deploy_tests_run(name: str) -> None:
    """tests/deploy/test_probes.py runs the Kubernetes probes against real processes; the
    compose checks are the same commands (the API's is run there too)."""
    compose_test = SERVICES[name]["healthcheck"]["test"]
    probe = k8s_container(name)["livenessProbe"]["exec"]["command"]
    assert squeezed(compose_test[-1]) == squeezed(probe[-1])
    assert compose_test[0] == ("CMD-SHELL" if probe[0] == "sh" else "CMD")
