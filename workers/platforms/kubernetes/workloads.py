"""Deployments: the stable one the job names, and ``<app>-canary`` beside it, which Canarist owns.

The canary is the stable pod template with the new image(s) and ``<version_label>: <version>``,
plus ``canarist.dev/role: canary``. Its selector is the stable's selector plus that role label
only, for three reasons:

- The stable Deployment's selector is immutable and usually a subset of the canary pods' labels,
  so canary pods match it. That is harmless: controllers adopt only orphans, and every canary pod
  and ReplicaSet has the canary Deployment as its controller owner. The role label goes further:
  the canary's pod-template-hash can never equal one of the stable's, so no ReplicaSet name or
  hash is shared even when the canary template equals the stable's new one during promotion.
- The canary's selector requires the role label, which stable pods never carry, so the canary
  can never adopt a stable pod or ReplicaSet.
- The version is not in the selector (selectors are immutable): the next rollout re-templates
  the same canary Deployment to its own version instead of needing a new object.

The Services tell the versions apart by ``<version_label>`` (services.py), which is why routers
and blue-green need the stable pod template to carry that label.

A HorizontalPodAutoscaler on the stable Deployment owns its size (autoscaling.py): the stable's
``spec.replicas`` is then never written (``retemplate_stable`` with ``replicas=None``), the
canary is sized from the stable's current ``spec.replicas``, and ``rolling``, which scales the
stable down batch by batch, is refused naming the HPA. The HPA's selector is the stable's, which
canary pods match as said above, so its count reflects both versions' load.
"""

from __future__ import annotations

import copy
from typing import Any

from workers.platforms.base import Failed, NotYet, PlatformError, Readiness, Ready
from workers.platforms.kubernetes import desired as marks
from workers.platforms.kubernetes import held
from workers.platforms.kubernetes.api import DEPLOYMENTS, MERGE, PODS, Kube, Obj, merge_diff
from workers.platforms.kubernetes.desired import Baseline
from workers.platforms.kubernetes.target import Target

STUCK = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
     "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)  # fmt: skip


def read_stable(kube: Kube, target: Target) -> Obj:
    """The stable Deployment as its pods run it: a paused one holding a new template reads as
    its serving ReplicaSet's template (held.py)."""
    stable = kube.get(DEPLOYMENTS, target.namespace, target.app)
    if stable is None:
        raise PlatformError(f"no Deployment {target.namespace}/{target.app}: the job names it")
    return held.serving_view(kube, stable)


def read_canary(kube: Kube, target: Target) -> Obj | None:
    """The canary Deployment, or None; refuse one Canarist did not create."""
    canary = kube.get(DEPLOYMENTS, target.namespace, target.canary)
    if canary is not None and not marks.owned_by_canarist(canary):
        raise PlatformError(
            f"Deployment {target.namespace}/{target.canary} exists and is not managed by "
            f"canarist (no {marks.MANAGED_BY}: canarist label): rename or delete it"
        )
    return canary


def containers(deployment: Obj) -> list[dict[str, Any]]:
    spec = deployment.get("spec", {}).get("template", {}).get("spec", {})
    found: list[dict[str, Any]] = spec.get("containers") or []
    return found


def images_of(deployment: Obj) -> dict[str, str]:
    return {c["name"]: c.get("image", "") for c in containers(deployment)}


def pod_labels(deployment: Obj) -> dict[str, str]:
    template = deployment.get("spec", {}).get("template", {})
    labels: dict[str, str] = template.get("metadata", {}).get("labels") or {}
    return labels


def new_images(stable: Obj, target: Target) -> dict[str, str]:
    """Container -> new image: ``images`` as given, ``image`` for the only container or the one
    named like the app. An unknown container is refused, naming the ones that exist."""
    names = [c["name"] for c in containers(stable)]
    wanted = dict(target.images)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise PlatformError(
            f"Deployment {target.namespace}/{target.app} has no container {', '.join(unknown)}; "
            f"its containers: {', '.join(names)}"
        )
    if target.image:
        default = names[0] if len(names) == 1 else target.app if target.app in names else None
        if default is None:
            raise PlatformError(
                f"Deployment {target.namespace}/{target.app} has containers {', '.join(names)} "
                f"and none is named {target.app}: give the new images by container (images:)"
            )
        if wanted.get(default, target.image) != target.image:
            raise PlatformError(f"container {default} is given two images: image and images")
        wanted[default] = target.image
    return wanted


def baseline_of(stable: Obj, target: Target) -> Baseline:
    """The stable as found; refuse what the rollout cannot tell apart from it."""
    version = pod_labels(stable).get(target.label, "")
    if target.needs_services and not version:
        how = target.strategy if target.blue_green else target.traffic.router
        raise PlatformError(
            f"the pod template of Deployment {target.namespace}/{target.app} has no label "
            f"{target.label!r}: {how} needs it to select only stable pods (add it, or set "
            "traffic.version_label)"
        )
    if version == target.version:
        raise PlatformError(
            f"Deployment {target.namespace}/{target.app} already runs {target.label}="
            f"{version}: the new version needs another {target.label} value"
        )
    replicas = stable.get("spec", {}).get("replicas", 1)
    if not replicas:
        raise PlatformError(f"Deployment {target.namespace}/{target.app} has 0 replicas")
    return Baseline(int(replicas), version, images_of(stable), held.paused(stable))


def canary_selector(stable: Obj) -> dict[str, Any]:
    selector = copy.deepcopy(stable.get("spec", {}).get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), marks.ROLE: "canary"}
    return selector


def canary_template(stable: Obj, target: Target, images: dict[str, str]) -> dict[str, Any]:
    """The stable's template (the one a paused Deployment holds, when it holds one: the user's
    new manifest, env and all) with the new images, version label and canary role."""
    source = held.held_template(stable) or stable.get("spec", {}).get("template") or {}
    template = copy.deepcopy(source)
    metadata = template.setdefault("metadata", {})
    labels = metadata.get("labels") or {}
    metadata["labels"] = {**labels, target.label: target.version, marks.ROLE: "canary"}
    for container in template.get("spec", {}).get("containers") or []:
        container["image"] = images.get(container["name"], container.get("image"))
    return template


def ensure_canary(
    kube: Kube, target: Target, stable: Obj, canary: Obj | None, metadata: dict[str, Any]
) -> Obj:
    """Create the canary at 0 replicas, or re-template one left by another rollout or attempt;
    then make sure it carries ``metadata`` (labels and the desired/baseline annotations)."""
    images = new_images(stable, target)
    spec = {
        "selector": canary_selector(stable),
        "template": canary_template(stable, target, images),
        "revisionHistoryLimit": 2,
        **{
            key: stable["spec"][key]
            for key in ("minReadySeconds", "progressDeadlineSeconds", "strategy")
            if key in stable.get("spec", {})
        },
    }
    if canary is None:
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": target.canary, "namespace": target.namespace, **metadata},
            "spec": {**spec, "replicas": 0},
        }
        return kube.create(DEPLOYMENTS, target.namespace, body)
    if canary.get("spec", {}).get("selector") != spec["selector"]:
        raise PlatformError(
            f"Deployment {target.namespace}/{target.canary} selects {canary['spec']['selector']}, "
            "not the stable's selector plus the canary role: delete it and Canarist recreates it"
        )
    ours = marks.label_value(target.rollout), str(target.attempt)
    labels = canary.get("metadata", {}).get("labels") or {}
    retemplate = (labels.get(marks.ROLLOUT), labels.get(marks.ATTEMPT)) != ours

    def change(current: Obj) -> Obj | None:
        body: Obj = {}
        if retemplate:
            wanted = {**current.get("spec", {}), **spec}
            body["spec"] = merge_diff(current.get("spec", {}), wanted)
            body["spec"].pop("replicas", None)
        if not marks.stamped(current, metadata):
            body["metadata"] = copy.deepcopy(metadata)
        return body or None

    changed = kube.modify(DEPLOYMENTS, target.namespace, target.canary, change, MERGE)
    if changed is None:
        raise PlatformError(f"Deployment {target.namespace}/{target.canary} vanished")
    return changed


def restamp(kube: Kube, target: Target, name: str, metadata: dict[str, Any]) -> Obj:
    """Give Deployment ``name`` these labels and annotations (nothing else changes)."""

    def change(current: Obj) -> Obj | None:
        return None if marks.stamped(current, metadata) else {"metadata": copy.deepcopy(metadata)}

    changed = kube.modify(DEPLOYMENTS, target.namespace, name, change)
    if changed is None:
        raise PlatformError(f"Deployment {target.namespace}/{name} vanished")
    return changed


def scale(kube: Kube, target: Target, name: str, replicas: int, owned: bool) -> None:
    """Set ``spec.replicas`` (recording it as that object's desired state) unless it is set."""

    def change(current: Obj) -> Obj | None:
        if current.get("spec", {}).get("replicas", 1) == replicas:
            return None
        stamp = target.stamp({"replicas": replicas}, owned)
        if owned:  # the canary's desired annotation is the rollout's: leave it
            stamp.pop("annotations")
        return {"metadata": stamp, "spec": {"replicas": replicas}}

    kube.modify(DEPLOYMENTS, target.namespace, name, change)


def retemplate_stable(
    kube: Kube, target: Target, version: str, images: dict[str, str], replicas: int | None
) -> None:
    """Give the stable Deployment this version label, these images and this size (promotion, or
    undoing a promotion that failed; ``replicas`` None: leave the size to its HPA). Containers
    are sent whole with the images replaced: a strategic merge matches them by name, and a stale
    read is refused (resourceVersion)."""

    def change(current: Obj) -> Obj | None:
        labels = pod_labels(current)
        same = labels.get(target.label) == (version or None) and all(
            images_of(current).get(name) == image for name, image in images.items()
        )
        if same and replicas in (None, current.get("spec", {}).get("replicas", 1)):
            return None
        wanted = [
            {**container, "image": images.get(container["name"], container.get("image"))}
            for container in containers(current)
        ]
        desired = {"replicas": replicas, "version": version, "images": images}
        label = {target.label: version or None}  # "": the stable had no version label
        template = {"metadata": {"labels": label}, "spec": {"containers": wanted}}
        size = {} if replicas is None else {"replicas": replicas}
        return {
            "metadata": target.stamp(desired, owned=False),
            "spec": {**size, "template": template},
        }

    kube.modify(DEPLOYMENTS, target.namespace, target.app, change)


def templated(stable: Obj, target: Target, version: str, images: dict[str, str]) -> bool:
    """The stable pod template has this version label and these images."""
    current = images_of(stable)
    return pod_labels(stable).get(target.label) == (version or None) and all(
        current.get(name) == image for name, image in images.items()
    )


def rolled_out(deployment: Obj, replicas: int, deadline_fails: bool = True) -> Readiness:
    """Ready once the controller has acted on the latest spec and ``replicas`` pods of it are
    available and no others run; Failed past the progress deadline (NotYet when not
    ``deadline_fails``: a rollback waits, it does not fail)."""
    name = deployment.get("metadata", {}).get("name", "?")
    spec, status = deployment.get("spec", {}), deployment.get("status") or {}
    if spec.get("replicas", 1) != replicas:
        return NotYet(f"Deployment {name} is asked for {spec.get('replicas', 1)}, not {replicas}")
    for condition in status.get("conditions") or [] if deadline_fails else []:
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            why = condition.get("reason") or "not progressing"
            return Failed(f"Deployment {name}: {why}: {condition.get('message', '')}".strip())
    generation = deployment.get("metadata", {}).get("generation")
    if generation is not None and (status.get("observedGeneration") or 0) < generation:
        return NotYet(f"Deployment {name}: generation {generation} not observed yet")
    counts = [status.get(key) or 0 for key in ("updatedReplicas", "availableReplicas", "replicas")]
    if counts[0] < replicas or counts[1] < replicas or counts[2] != replicas:
        updated, available, total = counts
        return NotYet(
            f"Deployment {name}: {available}/{replicas} available, {updated} updated, {total} pods"
        )
    return Ready()


def stuck_pods(kube: Kube, target: Target, canary: Obj) -> str | None:
    """Why a canary pod cannot run (crash loop, image pull), or None."""
    selector = {**canary["spec"]["selector"].get("matchLabels", {}), target.label: target.version}
    for pod in kube.list(PODS, target.namespace, selector):
        status = pod.get("status") or {}
        for container in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK:
                pod_name = pod.get("metadata", {}).get("name", "?")
                why = f"pod {pod_name}: container {container.get('name')} is {waiting['reason']}"
                message = waiting.get("message", "")
                return f"{why}: {message}" if message else why
    return None
