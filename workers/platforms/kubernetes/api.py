"""The only module that calls the Kubernetes client: typed wrappers that return plain dicts.

Every request goes through ``Kube._call``, which translates the client's failures at the edge::

    404                        "gone": get/patch return None, delete returns False
    409 on a patch             ``Stale``: ``modify`` re-reads and retries with the fresh
                               resourceVersion (every patch it sends carries the one it read)
    409 on a create            ``AlreadyExists``: the caller adopts the object that is there
    429, 5xx, timeouts,        retried inline with exponential backoff for at most ``budget``
    connection errors          seconds (1 s: a blip), then ``TemporaryError`` carrying the next
                               backoff (or Retry-After): the task gives the worker back and is
                               requeued after that wait, so a slow apiserver never holds every
                               other rollout of a worker while one call sleeps
    400, 401, 403, 422, ...    ``PlatformError`` carrying the API's own message

Objects are read and written as JSON dicts (``_preload_content=False``): the platform works on
the fields it knows and passes the others through untouched, custom objects included. Patches
use the content type each kind merges correctly: strategic merge for Deployments and Services
(containers merge by name), JSON merge patch for Ingresses and custom objects (lists are
replaced whole, which is what the routers want for their rules). A call missing from
permissions.PERMISSIONS fails loudly: RBAC is written from that list.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from workers.errors import TemporaryError
from workers.platforms.base import PlatformError
from workers.platforms.kubernetes.permissions import PERMISSIONS, Permission

Obj = dict[str, Any]
USER_AGENT = "canarist"
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
CONFLICT_ATTEMPTS = 5


class Stale(Exception):  # noqa: N818 - an outcome handled inside this module, never raised out
    """409 on a patch: the object changed since it was read."""


class AlreadyExists(Exception):  # noqa: N818 - an outcome the caller handles by adopting
    """409 on a create: an object of that name is already there."""


class Expired(Exception):  # noqa: N818 - an outcome: the watcher lists again
    """410 Gone on a watch: the resourceVersion it resumes from is compacted away."""


@dataclass(frozen=True)
class Kind:
    """A resource the platform touches, and how its patches are encoded."""

    group: str
    version: str
    plural: str
    patch_type: str = STRATEGIC

    def permission(self, verb: str) -> Permission:
        return Permission(self.group, self.plural, verb)


DEPLOYMENTS = Kind("apps", "v1", "deployments")
SERVICES = Kind("", "v1", "services")
PODS = Kind("", "v1", "pods")
REPLICASETS = Kind("apps", "v1", "replicasets")
EVENTS = Kind("", "v1", "events")
INGRESSES = Kind("networking.k8s.io", "v1", "ingresses", MERGE)
HTTPROUTES = Kind("gateway.networking.k8s.io", "v1", "httproutes", MERGE)
AUTOSCALERS = Kind("autoscaling", "v2", "horizontalpodautoscalers")


class Kube:
    """Typed calls over one ``kubernetes.client.ApiClient`` with retries and translated errors."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        timeout: float = 10.0,
        budget: float = 1.0,
        backoff: float = 0.2,
        permissions: frozenset[Permission] = PERMISSIONS,
    ) -> None:
        """``timeout``: seconds per request; ``budget``: seconds a call may spend retrying
        inline before it gives up with a ``TemporaryError`` the task requeues after;
        ``permissions``: the calls this identity makes (the GitOps watch has its own)."""
        api_client.user_agent = USER_AGENT
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.autoscaling = client.AutoscalingV2Api(api_client)
        self.timeout, self.budget, self.backoff = timeout, budget, backoff
        self.permissions = permissions
        self._streams: set[Any] = set()  # open watch streams, for interrupt()
        self._streams_lock = threading.Lock()

    # -- reads --------------------------------------------------------------------------------
    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        options = self._options()
        calls: dict[Kind, Callable[[], Any]] = {
            DEPLOYMENTS: lambda: self.apps.read_namespaced_deployment(name, namespace, **options),
            SERVICES: lambda: self.core.read_namespaced_service(name, namespace, **options),
            INGRESSES: lambda: self.networking.read_namespaced_ingress(name, namespace, **options),
            HTTPROUTES: lambda: self.custom.get_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, name, **options
            ),
        }
        found: Obj | None = self._call(kind, "get", f"{namespace}/{name}", calls)
        return found

    def list(self, kind: Kind, namespace: str, selector: dict[str, str]) -> list[Obj]:
        """Objects whose labels include ``selector`` (filtered here too: a proxy or an emulator
        that ignores labelSelector must not widen the answer)."""
        return self.listing(kind, namespace, selector)[0]

    def listing(
        self, kind: Kind, namespace: str, selector: dict[str, str]
    ) -> tuple[builtins.list[Obj], str | None]:
        """``list``, and the list's resourceVersion: where a watch of what follows resumes."""
        query = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        options = self._options()
        calls: dict[Kind, Callable[[], Any]] = {
            PODS: lambda: self.core.list_namespaced_pod(namespace, label_selector=query, **options),
            AUTOSCALERS: lambda: self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
                namespace, label_selector=query, **options
            ),
            REPLICASETS: lambda: self.apps.list_namespaced_replica_set(
                namespace, label_selector=query, **options
            ),
            DEPLOYMENTS: lambda: self.apps.list_namespaced_deployment(
                namespace, label_selector=query, **options
            ),
        }
        answer = self._call(kind, "list", f"{namespace}?{query}", calls) or {}
        items: list[Obj] = answer.get("items") or []
        version = (answer.get("metadata") or {}).get("resourceVersion")
        return [item for item in items if has_labels(item, selector)], version

    def watch(self, namespace: str, resource_version: str | None, seconds: int) -> Iterator[Obj]:
        """Deployment events in ``namespace`` after ``resource_version`` for about ``seconds``
        (the server ends the stream; a silent one is cut at ``seconds`` plus the timeout):
        ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK, "object": ...}``. ``Expired`` on 410."""
        if DEPLOYMENTS.permission("watch") not in self.permissions:
            raise PlatformError("watch deployments is not a call this identity makes")
        try:
            response: Any = self.apps.list_namespaced_deployment(
                namespace,
                watch=True,
                resource_version=resource_version or None,
                timeout_seconds=seconds,
                allow_watch_bookmarks=True,
                _preload_content=False,
                _request_timeout=(self.timeout, seconds + self.timeout),
            )
        except ApiException as exc:
            if exc.status == 410:
                raise Expired(_message(exc)) from exc
            problem = f"watch deployments {namespace}: {exc.status} {_message(exc)}"
            if exc.status in (429, None) or (exc.status or 0) >= 500:
                raise TemporaryError(problem, 2.0) from exc
            raise PlatformError(problem) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise TemporaryError(f"watch deployments {namespace}: {exc}", 2.0) from exc
        with self._streams_lock:
            self._streams.add(response)
        try:
            yield from _events(response, namespace)
        except (urllib3.exceptions.HTTPError, OSError):
            return  # cut at the read timeout, or interrupted: the caller decides what next
        finally:
            with self._streams_lock:
                self._streams.discard(response)
            response.release_conn()

    def interrupt(self) -> None:
        """End every watch stream now (another thread blocked reading one returns at once)."""
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            response.shutdown()

    # -- writes -------------------------------------------------------------------------------
    def create(self, kind: Kind, namespace: str, body: Obj) -> Obj:
        """Create ``body``; ``AlreadyExists`` when the name is taken."""
        options, data = self._options(), cast(Any, body)  # the client validates it into a model
        calls: dict[Kind, Callable[[], Any]] = {
            DEPLOYMENTS: lambda: self.apps.create_namespaced_deployment(namespace, data, **options),
            SERVICES: lambda: self.core.create_namespaced_service(namespace, data, **options),
            EVENTS: lambda: self.core.create_namespaced_event(namespace, data, **options),
            INGRESSES: lambda: self.networking.create_namespaced_ingress(
                namespace, data, **options
            ),
        }
        name = f"{namespace}/{body.get('metadata', {}).get('name', '')}"
        try:
            created = self._call(kind, "create", name, calls)
        except Stale as exc:
            raise AlreadyExists(name) from exc
        return created or {}

    def patch(
        self, kind: Kind, namespace: str, name: str, body: Obj, patch_type: str | None = None
    ) -> Obj | None:
        """Patch with the kind's patch type (or ``patch_type``: MERGE replaces lists whole);
        None when the object is gone; ``Stale`` on 409."""
        options = {**self._options(), "_content_type": patch_type or kind.patch_type}
        calls: dict[Kind, Callable[[], Any]] = {
            DEPLOYMENTS: lambda: self.apps.patch_namespaced_deployment(
                name, namespace, body, **options
            ),
            SERVICES: lambda: self.core.patch_namespaced_service(name, namespace, body, **options),
            INGRESSES: lambda: self.networking.patch_namespaced_ingress(
                name, namespace, body, **options
            ),
            HTTPROUTES: lambda: self.custom.patch_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, name, body, **options
            ),
        }
        patched: Obj | None = self._call(kind, "patch", f"{namespace}/{name}", calls)
        return patched

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete; False when it was already gone."""
        options = self._options()
        calls: dict[Kind, Callable[[], Any]] = {
            INGRESSES: lambda: self.networking.delete_namespaced_ingress(
                name, namespace, **options
            ),
        }
        return self._call(kind, "delete", f"{namespace}/{name}", calls) is not None

    def modify(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        change: Callable[[Obj], Obj | None],
        patch_type: str | None = None,
    ) -> Obj | None:
        """Read, ask ``change`` for a patch (None: nothing to do), patch with the resourceVersion
        read; on 409 read again and ask again. None when the object does not exist."""
        for _ in range(CONFLICT_ATTEMPTS):
            current = self.get(kind, namespace, name)
            if current is None:
                return None
            body = change(current)
            if body is None:
                return current
            version = current.get("metadata", {}).get("resourceVersion")
            if version is not None:
                metadata = {**body.get("metadata", {}), "resourceVersion": version}
                body = {**body, "metadata": metadata}
            try:
                return self.patch(kind, namespace, name, body, patch_type)
            except Stale:
                continue
        raise TemporaryError(f"{kind.plural} {namespace}/{name} keeps changing under us", 2.0)

    # -- the edge -----------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": self.timeout}

    def _call(self, kind: Kind, verb: str, what: str, calls: dict[Kind, Callable[[], Any]]) -> Any:
        if kind.permission(verb) not in self.permissions or kind not in calls:
            raise PlatformError(f"{verb} {kind.plural} is not a call this platform makes")
        deadline, delay = time.monotonic() + self.budget, self.backoff
        while True:
            try:
                response = calls[kind]()
                return json.loads(response.data) if response.data else {}
            except ApiException as exc:
                status, message = exc.status or 0, _message(exc)
                if status == 404:
                    return None
                if status == 409:
                    raise Stale(message) from exc
                if status != 429 and status < 500:
                    raise PlatformError(f"{verb} {kind.plural} {what}: {status} {message}") from exc
                problem, wait = f"{status} {message}", _retry_after(exc, delay)
            except urllib3.exceptions.HTTPError as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", delay
            except ValidationError as exc:  # the client validates bodies before sending them
                raise PlatformError(f"{verb} {kind.plural} {what}: malformed body: {exc}") from exc
            if time.monotonic() + wait > deadline:
                raise TemporaryError(f"{verb} {kind.plural} {what}: {problem}", max(wait, 1.0))
            time.sleep(wait)
            delay = min(delay * 2, 2.0)


def _events(response: Any, namespace: str) -> Iterator[Obj]:
    """The watch stream's JSON lines as events; an ERROR event of code 410 is ``Expired``."""
    pending = b""
    for chunk in response.stream(2**16):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                if status.get("code") == 410:
                    raise Expired(str(status.get("message", "")))
                raise TemporaryError(f"watch deployments {namespace}: {status}", 2.0)
            yield event


def merge_diff(current: Any, wanted: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``current`` into exactly ``wanted``: keys only
    in ``current`` become null, maps recurse, everything else (lists too) is replaced."""
    if not isinstance(current, dict) or not isinstance(wanted, dict):
        return wanted
    patch = {key: None for key in current if key not in wanted}
    for key, value in wanted.items():
        if key not in current or current[key] != value:
            patch[key] = merge_diff(current.get(key), value)
    return patch


def has_labels(obj: Obj, selector: dict[str, str]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return (exc.body or exc.reason or "").strip()[:300]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return str(exc.reason or "")


def _retry_after(exc: ApiException, default: float) -> float:
    header = (exc.headers or {}).get("Retry-After")
    try:
        return min(float(header), 5.0) if header is not None else default
    except ValueError:
        return default
