"""The cluster the Kubernetes platform tests run against: kmock's emulator, or a real one.

``Cluster`` is what the tests see either way: the platform's client configuration, a namespace,
a helper client (user agent ``canarist-tests``, so the permission test and the injected faults
can tell the platform's requests apart) that writes the objects a user would have (stable
Deployment, Service, HTTPRoute, Ingress), and ``settle()``, which plays the Deployment
controller: on the emulator (emulator.py) it writes Deployment status (observedGeneration and
replica counts) as the controller would, and a waiting pod for a Deployment whose image cannot
be pulled (``invalid.example/...``), as the kubelet would; on a real cluster it waits for the
real controller instead.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import yaml
from kubernetes import client, config

from tests.workers.platforms.kubernetes.emulator import Emulator, Fault, Seen, from_platform, serve
from tests.workers.platforms.kubernetes.replica_sets import ReplicaSetController

PAUSE = "registry.k8s.io/pause:3.9"
BROKEN = "invalid.example/"  # an image prefix no registry serves: pods wait in ErrImagePull
CRDS = Path(__file__).parent / "crds"
NGINX = "nginx.ingress.kubernetes.io/"
NGINX_CANARY = f"{NGINX}canary"


@dataclass
class Cluster:
    configuration: client.Configuration
    namespace: str
    emulator: Emulator | None = None
    loop: asyncio.AbstractEventLoop | None = None
    helper: client.ApiClient = field(init=False)
    _replica_sets: ReplicaSetController | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.helper = client.ApiClient(self.configuration)
        self.helper.user_agent = "canarist-tests"

    @property
    def real(self) -> bool:
        return self.emulator is None

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for the emulator at ``path``, as a process started by a test reads it."""
        assert not self.real, "a real cluster has a kubeconfig of its own"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.configuration.host}}],
                    "users": [{"name": "ci", "user": {"token": "t"}}],
                    "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "ci"}}],
                    "current-context": "kmock",
                }
            )
        )
        return path

    def api_client(self) -> client.ApiClient:
        """A new client for a platform (the platform names itself in User-Agent)."""
        return client.ApiClient(self.configuration)

    # -- faults and requests (emulator only) ------------------------------------------------
    def inject(self, method: str, resource: str, fault: Fault) -> Fault:
        assert self.emulator is not None and self.loop is not None
        emulator = self.emulator

        async def register() -> None:
            emulator[method.lower(), kmock.resource(resource)][from_platform] << fault

        asyncio.run_coroutine_threadsafe(register(), self.loop).result(5)
        return fault

    def seen_since(self, mark: int) -> list[Seen]:
        assert self.emulator is not None
        return self.emulator.seen[mark:]

    def mark(self) -> int:
        return len(self.emulator.seen) if self.emulator is not None else 0

    # -- objects a user would have ---------------------------------------------------------
    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.helper)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.helper)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.helper)

    def deployment(self, app: str, replicas: int = 4, version: str = "v1", sidecar: bool = False):
        containers = [{"name": app, "image": f"{PAUSE}", "ports": [{"containerPort": 8080}]}]
        if sidecar:
            containers.append({"name": "proxy", "image": PAUSE})
        labels = {"app": app, "version": version}
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": app, "namespace": self.namespace, "labels": {"app": app}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "progressDeadlineSeconds": 60,
                "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
            },
        }
        self.apps.create_namespaced_deployment(self.namespace, body)
        self.settle()

    def service(self, name: str, app: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "selector": {"app": app},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        }
        self.core.create_namespaced_service(self.namespace, body)

    def http_route(self, name: str, service: str, extra_rules: Iterable[dict[str, Any]] = ()):
        rules = [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                "backendRefs": [{"name": service, "port": 80}],
            },
            *extra_rules,
        ]
        body = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"parentRefs": [{"name": "public"}], "rules": rules},
        }
        _retry(lambda: self.custom.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", body
        ))  # fmt: skip

    def ingress(self, name: str, service: str, annotations: dict[str, str] | None = None) -> None:
        path = {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}},
        }
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                **({"annotations": annotations} if annotations else {}),
            },
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{"host": f"{name}.example", "http": {"paths": [path]}}],
            },
        }
        client.NetworkingV1Api(self.helper).create_namespaced_ingress(self.namespace, body)

    # -- reading back ---------------------------------------------------------------------
    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object as JSON, or None."""
        reads: dict[str, Callable[[], Any]] = {
            "deployment": lambda: self.apps.read_namespaced_deployment(
                name, self.namespace, _preload_content=False
            ),
            "service": lambda: self.core.read_namespaced_service(
                name, self.namespace, _preload_content=False
            ),
            "ingress": lambda: client.NetworkingV1Api(self.helper).read_namespaced_ingress(
                name, self.namespace, _preload_content=False
            ),
            "httproute": lambda: self.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", name,
                _preload_content=False,
            ),
        }  # fmt: skip
        try:
            found: dict[str, Any] = json.loads(reads[kind]().data)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def events(self, app: str) -> list[dict[str, Any]]:
        """Canarist's Events on ``app``, oldest first: by event time, then by name (a real
        apiserver lists by name, and names sort by time only within one emitter's clock)."""
        answer = self.core.list_namespaced_event(self.namespace, _preload_content=False)
        items = json.loads(answer.data).get("items") or []
        ours = [
            event
            for event in items
            if event.get("involvedObject", {}).get("name") == app
            and event.get("reportingComponent") == "canarist"
        ]
        return sorted(ours, key=lambda event: (
            event.get("eventTime") or event.get("firstTimestamp") or "", event["metadata"]["name"]
        ))  # fmt: skip

    def route_weights(self, name: str) -> list[dict[str, int]]:
        """What HTTPRoute ``name`` means, rule by rule: the weight each Service backend gets.
        A missing weight is Gateway API's default 1, and the defaulted group ("") and kind
        (Service) are not shown: the same route as a real apiserver or the emulator stores it."""
        route = self.get("httproute", name)
        assert route is not None, f"no HTTPRoute {name}"
        return [service_weights(rule) for rule in route["spec"].get("rules") or []]

    def canary_annotations(self, ingress: str) -> dict[str, str]:
        """The ingress-nginx canary annotations of Ingress ``ingress`` (nothing else of it)."""
        found = self.get("ingress", ingress)
        assert found is not None, f"no Ingress {ingress}"
        annotations = found["metadata"].get("annotations") or {}
        return {key: value for key, value in annotations.items() if key.startswith(NGINX_CANARY)}

    def session_affinity(self, ingress: str) -> dict[str, str] | None:
        """What ingress-nginx's session affinity of Ingress ``ingress`` means, its defaults
        filled in: the cookie that pins a user to its backend, and, when it is a canary, whether
        that cookie keeps a user on the canary (``sticky``) or is ignored there (``legacy``);
        None when ingress-nginx pins nobody (no ``affinity: cookie``)."""
        found = self.get("ingress", ingress)
        assert found is not None, f"no Ingress {ingress}"
        annotations = found["metadata"].get("annotations") or {}
        if annotations.get(f"{NGINX}affinity") != "cookie":
            return None
        meaning = {"cookie": annotations.get(f"{NGINX}session-cookie-name", "INGRESSCOOKIE")}
        if annotations.get(NGINX_CANARY) == "true":
            meaning["canary"] = annotations.get(f"{NGINX}affinity-canary-behavior", "sticky")
        return meaning

    # -- the Deployment controller ----------------------------------------------------------
    def settle(self, timeout: float = 180.0) -> None:
        """Every Deployment in the namespace as the controller would leave it once done."""
        if self.real:
            self._wait_for_controller(timeout)
            return
        listing = self.apps.list_namespaced_deployment(self.namespace, _preload_content=False)
        self._replica_sets = ReplicaSetController(self.apps, self.namespace)  # once per settle
        for deployment in json.loads(listing.data).get("items") or []:
            self._play_controller(deployment)

    def _play_controller(self, deployment: dict[str, Any]) -> None:
        name, spec = deployment["metadata"]["name"], deployment["spec"]
        replicas = spec.get("replicas", 1)
        template = spec["template"]
        broken = any(c["image"].startswith(BROKEN) for c in template["spec"]["containers"])
        available = 0 if broken else replicas
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
        }
        held = self._replica_sets.play(deployment) if self._replica_sets else None
        status = held if held is not None else status  # ReplicaSets and spec.paused
        present = deployment.get("status") or {}
        if all(present.get(key) == value for key, value in status.items()):
            return  # the controller has nothing left to do here
        self.apps.patch_namespaced_deployment_status(
            name, self.namespace, {"status": status}, _content_type="application/merge-patch+json"
        )
        if broken and replicas:
            self._waiting_pod(f"{name}-x1", template, "ErrImagePull")

    def _waiting_pod(self, name: str, template: dict[str, Any], reason: str) -> None:
        container = template["spec"]["containers"][0]
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, **template["metadata"]},
            "spec": {"containers": [{"name": container["name"], "image": container["image"]}]},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container["image"],
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": reason, "message": "pull failed"}},
                    }
                ],
            },
        }
        try:
            self.core.create_namespaced_pod(self.namespace, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise

    def _wait_for_controller(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            listing = self.apps.list_namespaced_deployment(self.namespace, _preload_content=False)
            pending = [
                d["metadata"]["name"]
                for d in json.loads(listing.data).get("items") or []
                if not _settled(d)
            ]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"Deployments not settled in {timeout:.0f} s: {pending}")
            time.sleep(1.0)


def service_weights(rule: dict[str, Any]) -> dict[str, int]:
    """A rule's Service backends and their weights (a missing weight is the default 1)."""
    weights: dict[str, int] = {}
    for ref in rule.get("backendRefs") or []:
        if ref.get("group", "") == "" and ref.get("kind", "Service") == "Service":
            weights[ref["name"]] = ref.get("weight", 1)
    return weights


def _settled(deployment: dict[str, Any]) -> bool:
    spec, status = deployment["spec"], deployment.get("status") or {}
    images = [c["image"] for c in spec["template"]["spec"]["containers"]]
    if any(image.startswith(BROKEN) for image in images):
        return True  # never becomes available: the tests that use it poll readiness instead
    replicas = spec.get("replicas", 1)
    observed = (status.get("observedGeneration") or 0) >= deployment["metadata"]["generation"]
    if spec.get("paused"):
        return bool(observed)  # the controller rolls nothing out while it is paused
    counts = [status.get(k) or 0 for k in ("updatedReplicas", "availableReplicas", "replicas")]
    return observed and counts == [replicas, replicas, replicas]


def start_emulator() -> tuple[Cluster, Callable[[], None]]:
    """kmock's emulator on a free loopback port, served by an event loop in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="kmock", daemon=True)
    thread.start()

    emulator, server = asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
    configuration = client.Configuration(host=str(server.url).rstrip("/"))
    configuration.retries = False
    cluster = Cluster(configuration, "shop", emulator, loop)

    def stop() -> None:
        async def close() -> None:
            await server.__aexit__(None, None, None)
            await emulator.__aexit__(None, None, None)

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return cluster, stop


def connect_real(kubeconfig: str) -> tuple[Cluster, Callable[[], None]]:
    """A unique namespace on the cluster ``kubeconfig`` names, and the CRDs the tests need."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.retries = False
    namespace = f"canarist-test-{uuid.uuid4().hex[:8]}"
    cluster = Cluster(configuration, namespace)
    cluster.core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": namespace}})  # fmt: skip
    _ensure_crds(cluster.helper)

    def stop() -> None:
        cluster.core.delete_namespace(namespace)

    return cluster, stop


def _ensure_crds(helper: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(helper)
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            extensions.read_custom_resource_definition(name)
            continue
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        extensions.create_custom_resource_definition(crd)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = json.loads(
                extensions.read_custom_resource_definition(name, _preload_content=False).data
            )
            conditions = (found.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            time.sleep(0.5)


def _retry(create: Callable[[], Any], seconds: float = 10.0) -> Any:
    """A custom object may be refused for a second or two after its CRD is Established."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return create()
        except client.ApiException as exc:
            if exc.status not in (404, 503) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
