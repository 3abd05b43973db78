"""The Deployments' commands and probes, run for real over the test stack's Redis.

Each container of deploy/base is started as its Deployment says (its args and the variables its
ConfigMap and env give it), with only what a laptop must change: Redis and the policy directory
of the test stack, free loopback ports instead of 0.0.0.0 and fixed ones, and a temporary
directory instead of /tmp. Then its probes are run exactly as the kubelet would: they pass
while the process works and fail once it stops, so a probe that can never fail is caught too.
docker-compose.yml's health checks are the same commands (test_compose.py holds them to it),
and the API's, which differs, is run here as well.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.deploy.manifests import DEPLOY, ROOT, container_env, pod_specs, render
from tests.waiting import wait_until

CANARIST = Path(sys.executable).with_name("canarist")
DATABASE = 11  # these tests' own Redis database: keys and Celery queues
WAIT_SECONDS = 30.0
BASE = render(DEPLOY / "base")


def deployment(component: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for workload, pod in pod_specs(BASE):
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] == component:
            return workload, pod["containers"][0]
    raise KeyError(component)


@pytest.fixture
def redis_url(redis_server: ServiceProcess) -> Iterator[str]:
    url = f"redis://{HOST}:{redis_server.port}/{DATABASE}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def environment(component: str, redis_url: str, **changes: str) -> dict[str, str]:
    """The container's variables, with the test stack's Redis and policies."""
    workload, container = deployment(component)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CANARIST_")}
    env = {**inherited, **container_env(BASE, workload, container)}
    env.update(CANARIST_REDIS__URL=redis_url, CANARIST_POLICY_DIR=str(ROOT / "policies"))
    env.update(changes)
    return env


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(CANARIST), *argv], env=env, cwd=log.parent, stdout=output, stderr=output
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_for(what: str, check: Callable[[], bool], log: Path) -> None:
    wait_until(
        what, check, WAIT_SECONDS, every=0.3, detail=lambda: f"log:\n{log.read_text()[-3000:]}"
    )


def exec_probe(probe: dict[str, Any], env: dict[str, str], replace: dict[str, str]) -> int:
    """Run an exec probe's command as the kubelet does, within the probe's timeout."""
    command = list(probe["exec"]["command"])
    for old, new in replace.items():
        command = [part.replace(old, new) for part in command]
    binaries = str(Path(sys.executable).parent)
    env = {**env, "PATH": binaries + os.pathsep + env.get("PATH", "")}
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, timeout=probe["timeoutSeconds"], check=False
        )
    except subprocess.TimeoutExpired:
        return -1
    return done.returncode


def compose_health_check(service: str, replace: dict[str, str]) -> list[str]:
    """docker-compose.yml's health check of ``service`` (a CMD list), run with this Python."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    kind, program, *args = compose["services"][service]["healthcheck"]["test"]
    assert (kind, program) == ("CMD", "python")
    for old, new in replace.items():
        args = [arg.replace(old, new) for arg in args]
    return [sys.executable, *args]


def run(command: list[str]) -> int:
    return subprocess.run(command, capture_output=True, timeout=10, check=False).returncode


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_the_api_container_serves_its_probes(redis_url: str, tmp_path: Path) -> None:
    _, container = deployment("api")
    port, args = free_port(), list(container["args"])
    args[args.index("--host") + 1] = HOST
    args[args.index("--port") + 1] = str(port)
    log = tmp_path / "api.log"
    api = start(args, environment("api", redis_url), log)
    readiness = f"http://{HOST}:{port}{container['readinessProbe']['httpGet']['path']}"
    compose_check = compose_health_check("api", {"127.0.0.1:8000": f"{HOST}:{port}"})
    try:
        wait_for("the API's readiness", lambda: http_ok(readiness), log)
        with socket.create_connection((HOST, port), timeout=2):
            pass  # the liveness probe: a TCP connection
        assert run(compose_check) == 0
    finally:
        stop(api)
    assert not http_ok(readiness)
    assert run(compose_check) != 0


def test_the_worker_container_answers_its_probes_until_it_stops(
    redis_url: str, tmp_path: Path
) -> None:
    _, container = deployment("worker")
    metrics = free_port()
    env = environment(
        "worker",
        redis_url,
        CANARIST_WORKER_METRICS_PORT=str(metrics),
        HOSTNAME=socket.gethostname(),
    )
    log = tmp_path / "worker.log"
    worker = start(list(container["args"]), env, log)
    readiness = f"http://{HOST}:{metrics}{container['readinessProbe']['httpGet']['path']}"
    liveness = container["livenessProbe"]
    try:
        wait_for("the worker's readiness", lambda: http_ok(readiness), log)
        assert exec_probe(liveness, env, {}) == 0, log.read_text()[-3000:]
    finally:
        stop(worker)
    assert exec_probe(liveness, env, {"--timeout 10": "--timeout 2"}) != 0


def test_the_beat_container_keeps_its_liveness_file_fresh(redis_url: str, tmp_path: Path) -> None:
    _, container = deployment("beat")
    writable = tmp_path / "tmp"
    writable.mkdir()
    replace = {"/tmp/": f"{writable}/"}
    args = [arg.replace("/tmp/", f"{writable}/") for arg in container["args"]]
    env, log = environment("beat", redis_url), tmp_path / "beat.log"
    beat = start(args, env, log)
    liveness = container["livenessProbe"]
    try:
        wait_for("beat's schedule file", lambda: any(writable.iterdir()), log)
        assert exec_probe(liveness, env, replace) == 0
    finally:
        stop(beat)
    stale = time.time() - 3600
    for path in writable.iterdir():
        os.utime(path, (stale, stale))
    assert exec_probe(liveness, env, replace) == 1
