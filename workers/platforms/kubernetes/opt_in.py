"""What an opted-in Deployment asks for: its annotations read into a rollout job, or a refusal.

The GitOps watch (gitops.py) starts a canary when a Deployment that carries
``canarist.dev/policy`` holds a new pod template (held.py). This module turns what it sees into
the ``CanaryRequest`` a person would have submitted (the fields of a ``RolloutJob``, which intake
validates: the platforms do not import intake), with no I/O, so the rules are in one place:

    canarist.dev/policy             required: the policy's name (its traffic.version_label must
                                    be the version label below)
    canarist.dev/version-label      the pod label that names the version (default ``version``);
                                    the new template's value is the job's version
    canarist.dev/baseline-selector  Prometheus label matchers of the old version's series;
    canarist.dev/canary-selector    default ``app="{app}",{label}="{version}"``, where {app} is
                                    the pod label ``app`` (else the Deployment's name), {label}
                                    the version label and {version} the old or new value

The default selectors assume Prometheus attaches the pod labels ``app`` and ``version`` to the
series (a PodMonitor with podTargetLabels, as deploy/examples/checkout says).

One template on one lane is one rollout: the idempotency key is the namespace, the app, a digest
of the held template and the app's latest rollout when the change was seen, so a restarted watch
(or a second one) submits the same job under the same key and gets the same rollout back, while
a change back to an earlier template (A, B, then A again) is a new rollout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

POLICY = "canarist.dev/policy"
VERSION_LABEL = "canarist.dev/version-label"
BASELINE_SELECTOR = "canarist.dev/baseline-selector"
CANARY_SELECTOR = "canarist.dev/canary-selector"
DEFAULT_VERSION_LABEL = "version"
DEFAULT_SELECTOR = 'app="{app}",{label}="{version}"'


@dataclass(frozen=True)
class CanaryRequest:
    """A rollout job's fields, as the watch asks for one (workers/watch.py submits it)."""

    app: str
    namespace: str
    version: str
    images: dict[str, str]
    policy: str
    baseline: str
    canary: str
    idempotency_key: str
    platform: str = "kubernetes"
    from_manifest: bool = True  # an abort's alert says the manifest still names the version


@dataclass(frozen=True)
class Refusal:
    """Why no canary starts: recorded as a Warning Event (``reason``) and a log line."""

    reason: str
    message: str


def notes(deployment: dict[str, Any]) -> dict[str, str]:
    """The Deployment's annotations."""
    found: dict[str, str] = deployment.get("metadata", {}).get("annotations") or {}
    return found


def opted_in(deployment: dict[str, Any]) -> bool:
    return bool(notes(deployment).get(POLICY))


def version_label(deployment: dict[str, Any]) -> str:
    return notes(deployment).get(VERSION_LABEL) or DEFAULT_VERSION_LABEL


def template_digest(template: dict[str, Any]) -> str:
    """SHA-256 of the pod template as JSON with sorted keys: equal templates, equal digests."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def images(template: dict[str, Any]) -> dict[str, str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return {c["name"]: c.get("image", "") for c in containers if c.get("name")}


def labels(template: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = (template.get("metadata") or {}).get("labels") or {}
    return found


def job_for(
    deployment: dict[str, Any],
    held: dict[str, Any],
    serving: dict[str, Any],
    policy_label: str,
    latest: str | None,
) -> CanaryRequest | Refusal:
    """The job for the template ``held`` replacing ``serving`` (both pod templates), or why
    not. ``policy_label``: the policy's traffic.version_label; ``latest``: the app's latest
    rollout id (part of the idempotency key, see the module docstring)."""
    metadata = deployment.get("metadata", {})
    name, namespace = metadata.get("name", ""), metadata.get("namespace", "")
    label = version_label(deployment)
    if label != policy_label:
        return Refusal(
            "CanaryPolicyMismatch",
            f"{VERSION_LABEL} is {label!r} but policy {notes(deployment)[POLICY]!r} labels "
            f"versions with {policy_label!r} (traffic.version_label): make them agree",
        )
    new, old = labels(held).get(label), labels(serving).get(label)
    if not new:
        return Refusal(
            "CanaryVersionMissing",
            f"the new pod template has no label {label!r}: Canarist names the new version by it "
            f"(add {label}: <version> to spec.template.metadata.labels)",
        )
    if not old:
        return Refusal(
            "CanaryVersionMissing",
            f"the running pods carry no label {label!r}: there is no baseline version to compare "
            "with",
        )
    if new == old:
        return Refusal(
            "CanaryVersionUnchanged",
            f"the pod template changed but its label {label}={new} did not: a canary needs "
            f"another {label} value than the running pods'",
        )
    app = labels(held).get("app") or name
    note = notes(deployment)
    digest = template_digest(held)
    lane = hashlib.sha256((latest or "").encode()).hexdigest()[:12]
    return CanaryRequest(
        app=name,
        namespace=namespace,
        version=new,
        images=images(held),
        policy=note[POLICY],
        baseline=_render(note.get(BASELINE_SELECTOR) or DEFAULT_SELECTOR, app, label, old),
        canary=_render(note.get(CANARY_SELECTOR) or DEFAULT_SELECTOR, app, label, new),
        idempotency_key=f"gitops/{namespace}/{name}/{digest[:32]}/{lane}",
    )


def _render(template: str, app: str, label: str, version: str) -> str:
    """Plain replacement, not str.format: PromQL matchers may hold braces of their own."""
    return template.replace("{app}", app).replace("{label}", label).replace("{version}", version)
