"""The GitOps watch: a canary starts by itself when an opted-in Deployment's pod template changes.

Teams that deploy with kubectl apply, Argo CD or Flux change the image in Git and expect the
canary to follow. ``canarist watch`` lists and watches the Deployments of the namespaces it is
configured for (``CANARIST_WATCH__NAMESPACES``); a Deployment opts in with the annotation
``canarist.dev/policy`` and ``spec.paused: true`` (opt_in.py reads the annotations, held.py says
why paused). For each one it sees it decides again from what is there, never from what it saw
before (level-triggered, like every Kubernetes controller):

    not opted in                      ignored
    paused, template runs             nothing to do (the steady state)
    paused, template held             submit the rollout through ``Intake.submit``, the one way
                                      in (workers/watch.py is the ``Door`` over it: platforms do
                                      not import intake): a second change supersedes the first
                                      rollout as a second job for the app would; nothing is
                                      submitted when the app's latest rollout is this template's
    held template aborted             a Warning Event: the Deployment stays paused on the old
                                      template, reverting the image in Git is the user's
    not paused                        a Warning Event (add ``paused: true``) and no rollout: the
                                      controller is already replacing every pod, too late for
                                      a canary; except while Canarist's own promotion has
                                      unpaused it
    refused (no version label, ...)   a Warning Event and a log line

Events are named after the Deployment, the reason and the template's digest, so each is created
once per template however often the Deployment is seen (a second create is AlreadyExists).

The loop, per namespace, in its own thread: list (handling every Deployment), then watch from the
list's resourceVersion for ``watch_seconds``; when the server ends the stream, watch again from the
last resourceVersion seen; list again every ``resync_seconds`` (what a missed event or a refused
submission needs) and at once on 410 Gone (the resourceVersion was compacted away). A failed call
is logged and retried after ``retry_seconds``: the watch never exits on its own.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from workers.errors import TemporaryError, WorkerError
from workers.platforms.kubernetes import api_client_from_env, events, held, opt_in
from workers.platforms.kubernetes.api import DEPLOYMENTS, EVENTS, AlreadyExists, Expired, Kube, Obj
from workers.platforms.kubernetes.opt_in import CanaryRequest, Refusal
from workers.platforms.kubernetes.permissions import WATCH_PERMISSIONS

log = logging.getLogger(__name__)
ACTOR = "canarist-watch"
COMPONENT = "canarist-watch"


class Seen(StrEnum):
    """What the watch made of one Deployment (logs and tests read it)."""

    IGNORED = "ignored"  # not opted in
    STEADY = "steady"  # nothing held, or Canarist's own promotion in progress
    SUBMITTED = "submitted"
    ALREADY = "already"  # the app's latest rollout is this template's
    REFUSED = "refused"  # a Warning Event says why


@dataclass(frozen=True)
class Latest:
    """The app's latest rollout, as far as the watch cares."""

    id: str
    version: str
    images: dict[str, str]
    phase: str
    ended_badly: bool  # aborted or failed: the cluster kept the old template


@dataclass(frozen=True)
class Started:
    rollout_id: str
    created: bool  # False: the idempotency key named a rollout submitted before
    superseded: str | None


class Door(Protocol):
    """The watch's way into intake (workers/watch.py); a refusal is a value, not an error.
    ``TemporaryError`` (the store is down) is raised: the watch retries."""

    def latest(self, app: str, namespace: str) -> Latest | None: ...

    def version_label(self, policy: str) -> str | Refusal: ...

    def submit(self, request: CanaryRequest, actor: str) -> Started | Refusal: ...


class GitOpsWatch:
    """Lists and watches Deployments in ``namespaces``; see the module docstring."""

    def __init__(
        self,
        kube: Kube,
        door: Door,
        namespaces: Sequence[str],
        *,
        watch_seconds: int = 240,
        resync_seconds: float = 600.0,
        retry_seconds: float = 5.0,
    ) -> None:
        self.kube, self.door, self.namespaces = kube, door, tuple(namespaces)
        self.watch_seconds, self.resync_seconds = watch_seconds, resync_seconds
        self.retry_seconds = retry_seconds

    @classmethod
    def from_env(cls, door: Door, namespaces: Sequence[str], **options: Any) -> GitOpsWatch:
        """The watch with this process's cluster credentials (as the platform finds them)."""
        kube = Kube(api_client_from_env(), permissions=WATCH_PERMISSIONS)
        return cls(kube, door, namespaces, **options)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Follow every namespace, one thread each, until ``stop`` is set; then end the watch
        streams the threads are blocked reading, and wait for them."""
        threads = [
            threading.Thread(target=self.follow, args=(namespace, stop), name=f"watch-{namespace}")
            for namespace in self.namespaces
        ]
        for thread in threads:
            thread.start()
        while not stop.wait(1.0):  # a timed wait: the signal handler that sets it gets to run
            pass
        self.kube.interrupt()
        for thread in threads:
            thread.join(self.kube.timeout + 5.0)

    def follow(self, namespace: str, stop: threading.Event) -> None:
        """List, then watch from the list's resourceVersion; see the module docstring."""
        version: str | None = None
        listed_at = 0.0
        while not stop.is_set():
            try:
                if version is None or time.monotonic() - listed_at > self.resync_seconds:
                    version, listed_at = self.sync(namespace), time.monotonic()
                for event in self.kube.watch(namespace, version, self.watch_seconds):
                    obj = event.get("object") or {}
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.handle(obj)
                    if stop.is_set():
                        return
            except Expired:
                log.info("watch of %s expired (410 Gone): listing again", namespace)
                version = None
            except (WorkerError, TemporaryError) as exc:
                log.warning("watch of %s: %s; again in %g s", namespace, exc, self.retry_seconds)
                version = None
                stop.wait(self.retry_seconds)
            except Exception:  # a thread that died would watch nothing, silently: log and go on
                log.exception("watch of %s failed; again in %g s", namespace, self.retry_seconds)
                version = None
                stop.wait(self.retry_seconds)

    def sync(self, namespace: str) -> str | None:
        """Handle every Deployment in ``namespace``; the list's resourceVersion."""
        deployments, version = self.kube.listing(DEPLOYMENTS, namespace, {})
        for deployment in deployments:
            self.handle(deployment)
        return version

    # -- one Deployment -------------------------------------------------------------------------
    def handle(self, deployment: Obj) -> Seen:
        """Decide again for this Deployment as it is now (see the module docstring)."""
        if not opt_in.opted_in(deployment):
            return Seen.IGNORED
        metadata = deployment.get("metadata", {})
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        template = deployment.get("spec", {}).get("template") or {}
        digest = opt_in.template_digest(template)
        latest = self.door.latest(name, namespace)
        if not held.paused(deployment):
            if latest is not None and _same(latest, template, deployment):
                return Seen.STEADY  # its rollout's promotion unpaused it, or it is done
            return self._refuse(deployment, digest, _unpaused(deployment))
        sets = held.replica_sets(self.kube, deployment)
        if not sets:
            return self._refuse(deployment, digest, _never_ran())
        serving = held.without_hash(sets[0].get("spec", {}).get("template") or {})
        if serving == template:
            return Seen.STEADY
        label = self.door.version_label(opt_in.notes(deployment)[opt_in.POLICY])
        if isinstance(label, Refusal):
            return self._refuse(deployment, digest, label)
        if latest is not None and _same(latest, template, deployment):
            if latest.ended_badly:
                aborted = _aborted(latest)
                self._event(deployment, digest, aborted.reason, aborted.message, "Warning")
            return Seen.ALREADY
        lane = latest.id if latest else None
        job = opt_in.job_for(deployment, template, serving, label, lane)
        if isinstance(job, Refusal):
            return self._refuse(deployment, digest, job)
        submitted = self.door.submit(job, f"{ACTOR} ({namespace}/{name})")
        if isinstance(submitted, Refusal):
            return self._refuse(deployment, digest, submitted)
        log.info(
            "%s/%s: pod template %s holds %s=%s: rollout %s%s",
            namespace, name, digest[:12], opt_in.version_label(deployment), job.version,
            submitted.rollout_id, f" (supersedes {submitted.superseded})" if submitted.superseded
            else "",
        )  # fmt: skip
        started = f"rollout {submitted.rollout_id} of {job.version} with policy {job.policy}"
        self._event(deployment, digest, "CanarySubmitted", started, "Normal")
        return Seen.SUBMITTED if submitted.created else Seen.ALREADY

    def _refuse(self, deployment: Obj, digest: str, refusal: Refusal) -> Seen:
        metadata = deployment.get("metadata", {})
        log.warning(
            "%s/%s: no canary: %s: %s",
            metadata.get("namespace"), metadata.get("name"), refusal.reason, refusal.message,
        )  # fmt: skip
        self._event(deployment, digest, refusal.reason, refusal.message, "Warning")
        return Seen.REFUSED

    def _event(self, deployment: Obj, digest: str, reason: str, message: str, kind: str) -> None:
        """One Event per Deployment, reason and template (best effort: the log has it too)."""
        metadata = deployment.get("metadata", {})
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        suffix = hashlib.sha256(f"{reason}/{digest}".encode()).hexdigest()[:16]
        body = events.deployment_event(deployment, reason, message, kind, COMPONENT)
        body["metadata"]["name"] = f"{name}.{suffix}"  # one per reason and template: a retry is 409
        try:
            self.kube.create(EVENTS, namespace, body)
        except AlreadyExists:
            pass  # recorded for this template already
        except (WorkerError, TemporaryError) as exc:
            log.warning("could not record Event %s on %s/%s: %s", reason, namespace, name, exc)


def _same(latest: Latest, template: dict[str, Any], deployment: Obj) -> bool:
    """The rollout is of this template: its version label value and its images."""
    version = opt_in.labels(template).get(opt_in.version_label(deployment))
    return latest.version == version and latest.images == opt_in.images(template)


def _unpaused(deployment: Obj) -> Refusal:
    return Refusal(
        "CanaryNeedsPause",
        f"{opt_in.POLICY} is set but the Deployment is not paused, so its controller replaces "
        "every pod with a new template before any analysis: add spec.paused: true to the "
        "manifest (Canarist unpauses it only to promote)",
    )


def _never_ran() -> Refusal:
    return Refusal(
        "CanaryNothingRunning",
        "the Deployment is paused and has no ReplicaSet: a Deployment created paused starts no "
        "pod, and a canary needs a running version to compare with; apply the first version "
        "with paused: false, then set paused: true",
    )


def _aborted(latest: Latest) -> Refusal:
    return Refusal(
        "CanaryAborted",
        f"rollout {latest.id} of {latest.version} ended {latest.phase}: the Deployment stays "
        "paused and its pods keep running the old template; revert the image in Git (the "
        "manifest) so the Deployment and the cluster agree again",
    )
