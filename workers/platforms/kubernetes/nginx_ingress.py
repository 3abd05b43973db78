"""The ingress-nginx router: a canary Ingress beside the stable one, driven by its annotations.

ingress-nginx splits traffic with a second Ingress for the same host and path, marked
``nginx.ingress.kubernetes.io/canary: "true"``. Canarist writes ``<ingress>-canary``: the stable
Ingress's class, TLS and rules, keeping only the paths that send to the stable Service and
pointing them at the canary Service, with

    canary-weight             the weight (percent)
    canary-by-header          a header match's name, with canary-by-header-value (exact) or
                              canary-by-header-pattern (regular expression)
    canary-by-cookie          a cookie match's name: ingress-nginx routes a request when that
                              cookie's value is "always", so only that value can be expressed

With ``traffic.sticky: {cookie: <name>}`` the canary Ingress also carries ingress-nginx's session
affinity (``affinity: cookie``, ``session-cookie-name: <name>``, ``affinity-canary-behavior:
sticky``). That is all ingress-nginx can do to keep a user on one version, and it is not a hash of
the user: a request without the cookie goes to the canary with probability ``weight`` (per
request, as without sticky), and the side that answers sets the cookie naming itself (its
backend, not a pod); a request whose cookie names the stable side stays on the stable, one naming
the canary stays on the canary. So users already on the canary stay there while the weight grows,
and so do users already on the stable: only users new to the cookie join the canary at the
current weight. This needs the stable Ingress to carry the same ``affinity: cookie`` and
``session-cookie-name`` (Canarist never changes it; without them a stable user is split again on
every request and drifts to the canary): ``check`` refuses the rollout, naming the annotations
to add. A header or the app's own cookie cannot key ingress-nginx's split (``canary-by-header`` and
``canary-by-cookie`` mean always/never, not a hash): ``ROUTER_LIMITS`` refuses them.

ingress-nginx reads one header and one cookie per canary Ingress: an audience it cannot express
(two headers, a cookie value other than "always") is refused with a PlatformError naming it,
never approximated. Those limits are analyzer/policy/traffic.py's ``ROUTER_LIMITS``, which the
policy's checks read too, so a policy that validates is not refused here. ``reset`` deletes the
canary Ingress; the stable Ingress is never changed.
"""

from __future__ import annotations

import copy
from typing import Any

from analyzer.policy.traffic import Router, StickyKey, audience_refusals, sticky_refusal
from workers.actions import Match
from workers.platforms.base import NotYet, PlatformError, Readiness, Ready
from workers.platforms.kubernetes.api import INGRESSES, AlreadyExists, Kube, Obj
from workers.platforms.kubernetes.desired import owned_by_canarist, sized_for_router, stamped
from workers.platforms.kubernetes.target import Target

PREFIX = "nginx.ingress.kubernetes.io/canary"
ANNOTATIONS = "nginx.ingress.kubernetes.io/"
AFFINITY = f"{ANNOTATIONS}affinity"
SESSION_COOKIE = f"{ANNOTATIONS}session-cookie-name"
CANARY_AFFINITY = f"{ANNOTATIONS}affinity-canary-behavior"
STICKY_KEYS = frozenset({AFFINITY, SESSION_COOKIE, CANARY_AFFINITY})  # written only when sticky
DEFAULT_SESSION_COOKIE = "INGRESSCOOKIE"  # ingress-nginx's, when session-cookie-name is unset


class NginxIngressRouter:
    name = Router.NGINX_INGRESS

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def check(self, target: Target, weight: int, match: tuple[Match, ...]) -> None:
        if target.fresh_baseline:
            raise PlatformError(
                "traffic.router nginx_ingress cannot give a fresh baseline the canary's share: "
                "ingress-nginx allows only one canary Ingress per host, so the requests split "
                "two ways only; use gateway_api or replicas, or analysis.baseline stable "
                "(the canary is never silently compared with the stable fleet instead)"
            )
        canary_annotations(weight, match, target.traffic.sticky)
        self._cloned_spec(target)
        if target.traffic.sticky is not None:
            self._check_stable_affinity(target, target.traffic.sticky)

    def set_traffic(self, target: Target, weight: int, match: tuple[Match, ...]) -> None:
        if not weight and not match:
            self.reset(target)
            return
        wanted = canary_annotations(weight, match, target.traffic.sticky)
        spec = self._cloned_spec(target)
        namespace, name = target.namespace, _canary_name(target)
        metadata = target.stamp({"weight": weight, "annotations": wanted}, owned=True)
        metadata["annotations"].update(wanted)
        if self.kube.get(INGRESSES, namespace, name) is None:
            body = {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": name, "namespace": namespace, **copy.deepcopy(metadata)},
                "spec": spec,
            }
            try:
                self.kube.create(INGRESSES, namespace, body)
                return
            except AlreadyExists:
                pass  # created since we looked: correct it below

        def change(current: Obj) -> Obj | None:
            self._check_owned(current, target)
            present = current.get("metadata", {}).get("annotations") or {}
            stale = {key: None for key in present if _ours(key) and key not in wanted}
            if not stale and stamped(current, metadata) and _has_spec(current, spec):
                return None
            annotations = {**stale, **metadata["annotations"]}
            return {"metadata": {**metadata, "annotations": annotations}, "spec": spec}

        self.kube.modify(INGRESSES, namespace, name, change)

    def reset(self, target: Target) -> None:
        current = self.kube.get(INGRESSES, target.namespace, _canary_name(target))
        if current is not None:
            self._check_owned(current, target)
            self.kube.delete(INGRESSES, target.namespace, _canary_name(target))

    def verify(self, target: Target, weight: int, match: tuple[Match, ...]) -> Readiness:
        name = _canary_name(target)
        current = self.kube.get(INGRESSES, target.namespace, name)
        if not weight and not match:
            return Ready() if current is None else NotYet(f"Ingress {name} is still there")
        if current is None:
            return NotYet(f"no Ingress {name} yet")
        wanted = canary_annotations(weight, match, target.traffic.sticky)
        present = current.get("metadata", {}).get("annotations") or {}
        ours = {key: value for key, value in present.items() if _ours(key)}
        if ours != wanted or not _has_spec(current, self._cloned_spec(target)):
            return NotYet(f"Ingress {name} does not send {weight}% yet")
        return Ready()

    def canary_replicas(self, stable: int, weight: int, match: tuple[Match, ...]) -> int:
        return sized_for_router(stable, weight, match)

    def _cloned_spec(self, target: Target) -> dict[str, Any]:
        name = target.traffic.ingress
        stable = self.kube.get(INGRESSES, target.namespace, name)
        if stable is None:
            raise PlatformError(f"no Ingress {target.namespace}/{name} (traffic.ingress)")
        return cloned_spec(stable.get("spec", {}), target)

    def _check_stable_affinity(self, target: Target, sticky: StickyKey) -> None:
        """The stable Ingress pins its users with the same cookie, or they would drift."""
        name = target.traffic.ingress
        stable = self.kube.get(INGRESSES, target.namespace, name) or {}
        present = stable.get("metadata", {}).get("annotations") or {}
        affinity = present.get(AFFINITY)
        cookie = present.get(SESSION_COOKIE, DEFAULT_SESSION_COOKIE)
        if affinity != "cookie" or cookie != sticky.name:
            raise PlatformError(
                f"traffic.sticky: Ingress {target.namespace}/{name} must keep its users on the "
                f"stable version with the same cookie, or each of its requests is split again "
                f"and its users drift to the canary: annotate it {AFFINITY}: cookie and "
                f"{SESSION_COOKIE}: {sticky.name} (it has {AFFINITY}: {affinity or 'none'}, "
                f"{SESSION_COOKIE}: {cookie}); Canarist never changes the stable Ingress"
            )

    def _check_owned(self, current: Obj, target: Target) -> None:
        if not owned_by_canarist(current):
            raise PlatformError(
                f"Ingress {target.namespace}/{_canary_name(target)} exists and is not managed "
                "by canarist: rename or delete it"
            )


def canary_annotations(
    weight: int, match: tuple[Match, ...], sticky: StickyKey | None = None
) -> dict[str, str]:
    """ingress-nginx's canary annotations for this split (and, when sticky, the canary's session
    affinity); PlatformError when it cannot say it."""
    refusals = audience_refusals(Router.NGINX_INGRESS, match)  # the policy's checks say the same
    if refusals:
        raise PlatformError("; ".join(refusal.message for refusal in refusals))
    unsticky = sticky_refusal(Router.NGINX_INGRESS, sticky)  # and this too
    if unsticky is not None:
        raise PlatformError(f"traffic.sticky: {unsticky}")
    headers = [rule for rule in match if rule.kind == "header"]
    cookies = [rule for rule in match if rule.kind == "cookie"]
    annotations = {PREFIX: "true", f"{PREFIX}-weight": str(weight)}
    for rule in headers:
        annotations[f"{PREFIX}-by-header"] = rule.name
        key = "pattern" if rule.regex else "value"
        annotations[f"{PREFIX}-by-header-{key}"] = rule.value
    for rule in cookies:
        annotations[f"{PREFIX}-by-cookie"] = rule.name
    if sticky is not None:
        annotations |= {AFFINITY: "cookie", SESSION_COOKIE: sticky.name, CANARY_AFFINITY: "sticky"}
    return annotations


def _ours(key: str) -> bool:
    """An annotation of the canary Ingress that Canarist writes (and so removes when unwanted)."""
    return key.startswith(PREFIX) or key in STICKY_KEYS


def cloned_spec(stable: dict[str, Any], target: Target) -> dict[str, Any]:
    """The stable Ingress's class, TLS and the paths to the stable Service, sent to the canary."""
    service, canary = target.traffic.stable_service, target.traffic.canary_service
    spec: dict[str, Any] = {
        key: copy.deepcopy(stable[key]) for key in ("ingressClassName", "tls") if key in stable
    }
    rules = []
    for rule in stable.get("rules") or []:
        paths = [
            _to_canary(path, canary)
            for path in (rule.get("http") or {}).get("paths") or []
            if (path.get("backend", {}).get("service") or {}).get("name") == service
        ]
        if paths:
            rules.append({**copy.deepcopy(rule), "http": {"paths": paths}})
    if not rules:
        raise PlatformError(
            f"Ingress {target.traffic.ingress} has no path sending to Service {service}"
        )
    spec["rules"] = rules
    return spec


def _to_canary(path: dict[str, Any], canary: str) -> dict[str, Any]:
    path = copy.deepcopy(path)
    path["backend"]["service"]["name"] = canary
    return path


def _canary_name(target: Target) -> str:
    return f"{target.traffic.ingress}-canary"


def _has_spec(current: Obj, spec: dict[str, Any]) -> bool:
    present = current.get("spec", {})
    return all(present.get(key) == value for key, value in spec.items())
