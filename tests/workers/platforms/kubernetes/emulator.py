"""kmock's Kubernetes emulator as the platform tests need it, served from a thread.

kmock's emulator keeps objects as merged JSON and runs no controllers, so ``Emulator`` adds the
two things the platform relies on from a real API server: ``metadata.generation`` grows when an
object's spec changes (so "observed" means something), and ``metadata.resourceVersion`` changes
on every write, a patch carrying a stale one getting 409 Conflict. ``Fault`` is a kmock reaction
that injects errors and slow answers into the platform's requests (never the tests' own), and
``seen`` records every request for the permission test.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import kmock

from workers.platforms.kubernetes.permissions import Permission

RESOURCES = (
    "apps/v1/deployments",
    "apps/v1/replicasets",
    "v1/services",
    "v1/pods",
    "v1/events",
    "networking.k8s.io/v1/ingresses",
    "gateway.networking.k8s.io/v1/httproutes",
)
VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}


@dataclass(frozen=True)
class Seen:
    """One request the emulator served, as the permission test needs it."""

    method: str
    group: str
    plural: str
    name: str | None
    user_agent: str


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with generations and resourceVersions (see the module docstring).

    kmock keeps every request and scans them all to match each new one against its reactions;
    over a session that grows quadratically, so only the last few are kept for matching and
    ``seen`` keeps the short record the permission test reads.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Seen] = []

    async def _handle(self, request: kmock.Request) -> Any:
        del self._requests[:-16]
        if request.resource is not None:
            resource = request.resource
            agent = request.headers.get("User-Agent", "")
            self.seen.append(
                Seen(request.method.value, resource.group or "", resource.plural or "",
                     request.name, agent)
            )  # fmt: skip
        key = _key(request)
        if key is not None and request.action == kmock.action.UPDATE:
            sent = ((request.data or {}).get("metadata") or {}).get("resourceVersion")
            async with self._lock:
                present = self._present(key)
            stored_version = (present or {}).get("metadata", {}).get("resourceVersion")
            if present is not None and sent is not None and sent != stored_version:
                raise kmock.KubernetesError(409, "Conflict", "the object has been modified")
        before = (self._present(key) or {}).get("spec")
        response = await super()._handle(request)
        if key is not None and request.action in (kmock.action.CREATE, kmock.action.UPDATE):
            async with self._lock:
                present = self._present(key)
                if present is not None:
                    metadata = present.get("metadata") or {}
                    generation = metadata.get("generation") or 0
                    changed = request.subresource is None and present.get("spec") != before
                    version = int(metadata.get("resourceVersion") or 0) + 1
                    stamp = {"resourceVersion": str(version)}
                    if changed or not generation:
                        stamp["generation"] = generation + 1
                    self.objects[key].patch({"metadata": stamp})
        return response

    def _present(self, key: tuple[Any, str | None, str] | None) -> dict[str, Any] | None:
        """A deep copy of the stored object, or None."""
        if key is None or key not in self.objects or self.objects[key].deleted:
            return None
        found: dict[str, Any] = json.loads(json.dumps(dict(self.objects[key].raw)))
        return found


def from_platform(request: kmock.Request) -> bool:
    """Faults hit the platform's requests, never the test's own (setup, the controller)."""
    return bool(request.headers.get("User-Agent") == "canarist")


def _key(request: kmock.Request) -> tuple[Any, str | None, str] | None:
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
    for resource in RESOURCES:
        emulator.resources[resource] = {"namespaced": True}
    return emulator, server
