"""kmock's Kubernetes emulator as the platform tests need it, served from a thread.

kmock's emulator keeps objects as merged JSON and runs no controllers, so ``Emulator`` adds what
the platform relies on from a real API server, in the answer to the request itself as the
apiserver gives it: a create answers with ``metadata.generation`` 1, a ``resourceVersion``, a
uid and a creation time; ``generation`` grows when a patch changes the spec (so "observed" means
something); ``resourceVersion`` is a counter over the whole store, as etcd's revision is, and a
patch carrying a stale one gets 409 Conflict; every create and patch result gets the defaults a
real apiserver fills in (defaulting.py: a table for built-in kinds, the CRD's schema for custom
resources); and lists are sorted by namespace and name, as etcd returns them. ``Fault`` is a kmock
reaction that injects errors and slow answers into the platform's requests (never the tests'
own), and ``seen`` records every request for the permission test.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import yaml
from kmock._internal.dicts import patch_dict

from tests.workers.platforms.kubernetes import defaulting
from workers.platforms.kubernetes.api import merge_diff
from workers.platforms.kubernetes.permissions import Permission

CRDS = Path(__file__).parent / "crds"
RESOURCES = (
    "apps/v1/deployments",
    "apps/v1/replicasets",
    "v1/services",
    "v1/pods",
    "v1/events",
    "networking.k8s.io/v1/ingresses",
    "autoscaling/v2/horizontalpodautoscalers",
)
VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}
Key = tuple[Any, str | None, str]


@dataclass(frozen=True)
class Seen:
    """One request the emulator served, as the permission test needs it."""

    method: str
    group: str
    plural: str
    name: str | None
    user_agent: str
    spec_keys: tuple[str, ...] = ()  # the spec fields a write sent (a scale sends "replicas")


def crd_schemas() -> dict[str, dict[str, Any]]:
    """Each served version of crds/*.yaml ("group/version/plural") -> its openAPIV3Schema."""
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            resource = f"{spec['group']}/{version['name']}/{spec['names']['plural']}"
            schemas[resource] = version["schema"]["openAPIV3Schema"]
    return schemas


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with a real apiserver's metadata, defaults and list order (see the
    module docstring).

    kmock keeps every request and scans them all to match each new one against its reactions;
    over a session that grows quadratically, so only the last few are kept for matching and
    ``seen`` keeps the short record the permission test reads.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Seen] = []
        self.schemas = crd_schemas()
        self.revisions = itertools.count(1000)

    async def _handle(self, request: kmock.Request) -> Any:
        del self._requests[:-16]
        if request.resource is not None:
            resource = request.resource
            agent = request.headers.get("User-Agent", "")
            sent = request.data.get("spec") if isinstance(request.data, dict) else None
            self.seen.append(
                Seen(request.method.value, resource.group or "", resource.plural or "",
                     request.name, agent, tuple(sorted(sent or {})))
            )  # fmt: skip
        key = _key(request)
        writes = (kmock.action.CREATE, kmock.action.UPDATE)
        if key is not None and request.action in writes and isinstance(request.data, dict):
            async with self._lock:
                present = self._present(key)
                if request.action == kmock.action.UPDATE:
                    self._refuse_stale(request, present)
                stored = self._stored(request, key, present)
            if stored is not None:  # kmock stores the body (create) or merges the patch
                body = stored if present is None else merge_diff(present, stored)
                request.data.clear()
                request.data.update(body)
        if key is None or request.action not in writes:
            return await super()._handle(request)
        known = key in self.objects
        versions = len(self.objects[key].history) if known else 0
        try:
            return await super()._handle(request)
        except kmock.KubernetesError:
            # kmock stores a write even when a reaction (an injected Fault) refuses it; a real
            # apiserver that answers 409 or 500 to a write has not made it
            async with self._lock:
                if not known and key in self.objects:
                    del self.objects[key]
                elif known:
                    del self.objects[key].history[versions:]
            raise

    async def _serve_list(self, request: kmock.Request) -> Any:
        answer = await super()._serve_list(request)
        answer["items"].sort(key=lambda item: (
            item.get("metadata", {}).get("namespace") or "", item.get("metadata", {}).get("name")
        ))  # fmt: skip
        return answer

    def _refuse_stale(self, request: kmock.Request, present: dict[str, Any] | None) -> None:
        sent = ((request.data or {}).get("metadata") or {}).get("resourceVersion")
        stored_version = (present or {}).get("metadata", {}).get("resourceVersion")
        if present is not None and sent is not None and sent != stored_version:
            raise kmock.KubernetesError(409, "Conflict", "the object has been modified")

    def _stored(
        self, request: kmock.Request, key: Key, present: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The object as the apiserver would store it after this write (None: not ours to say,
        e.g. a create over an existing object, which kmock refuses)."""
        resource = _path_of(key[0])
        if request.action == kmock.action.CREATE:
            if present is not None:
                return None
            stored = copy.deepcopy(request.data)
            metadata = stored.setdefault("metadata", {})
            metadata.setdefault("namespace", key[1])
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            metadata.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=created)
        elif present is None:
            return None  # kmock answers 404
        else:
            stored = dict(patch_dict(copy.deepcopy(present), request.data))
            if request.subresource == "status":  # only the status changes through /status
                stored = {**present, "status": stored.get("status")}
        stored = self._defaulted(resource, stored)
        metadata = stored.setdefault("metadata", {})
        if present is not None:
            generation = present.get("metadata", {}).get("generation") or 0
            via_spec = request.subresource in (None, "scale")  # /scale writes spec.replicas
            changed = via_spec and stored.get("spec") != present.get("spec")
            metadata["generation"] = generation + 1 if changed or not generation else generation
        metadata["resourceVersion"] = str(next(self.revisions))
        return stored

    def _defaulted(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        schema = self.schemas.get(resource)
        if schema is not None:
            return defaulting.custom_resource(body, schema)
        return defaulting.builtin(resource, body)

    def _present(self, key: Key | None) -> dict[str, Any] | None:
        """A deep copy of the stored object, or None."""
        if key is None or key not in self.objects or self.objects[key].deleted:
            return None
        found: dict[str, Any] = json.loads(json.dumps(dict(self.objects[key].raw)))
        return found


def from_platform(request: kmock.Request) -> bool:
    """Faults hit the platform's requests, never the test's own (setup, the controller)."""
    return bool(request.headers.get("User-Agent") == "canarist")


def _path_of(resource: kmock.resource) -> str:
    """The resource as RESOURCES names it: "group/version/plural" ("v1/plural" for core)."""
    return "/".join(part for part in (resource.group, resource.version, resource.plural) if part)


def _key(request: kmock.Request) -> Key | None:
    if request.resource is None:
        return None
    name = request.name or ((request.data or {}).get("metadata") or {}).get("name")
    if not isinstance(name, str):
        return None
    namespace = request.namespace or ((request.data or {}).get("metadata") or {}).get("namespace")
    return (request.resource, namespace, name)


class Fault:
    """A kmock reaction: the first ``count`` matching requests get ``status`` (after ``delay``
    seconds, past the client's timeout when slow); later ones pass through untouched."""

    def __init__(self, count: int = 1, status: int | None = None, delay: float = 0.0) -> None:
        self.left, self.status, self.delay, self.hits = count, status, delay, 0

    async def __call__(self, request: kmock.Request) -> Any:
        if self.left <= 0:
            return NotImplemented  # disables this reaction: the emulator answers as usual
        self.left -= 1
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is None:
            return NotImplemented
        raise kmock.KubernetesError(self.status, "Injected", f"injected {self.status}")


def permission_of(seen: Seen) -> Permission:
    """The RBAC rule a request needs: (API group, resource, verb)."""
    verb = VERBS.get(seen.method) or ("get" if seen.name else "list")
    return Permission(seen.group, seen.plural, verb)


# -- starting and stopping ----------------------------------------------------------------------


async def serve() -> tuple[Emulator, kmock.Server]:
    """The emulator on a free loopback port, every resource the platform uses registered."""
    emulator = Emulator()
    await emulator.__aenter__()
    server = kmock.Server(emulator, host="127.0.0.1")
    await server.__aenter__()
    for resource in (*RESOURCES, *emulator.schemas):
        emulator.resources[resource] = {"namespaced": True}
    return emulator, server
