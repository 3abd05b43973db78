"""The Gateway API router: weights and matches written into the app's HTTPRoute.

Canarist changes only what it owns in the user's HTTPRoute (``traffic.route``):

- every rule whose only backend is the stable Service gets weighted backendRefs: the stable
  Service at ``100 - w`` and the canary Service (same port) at ``w``; with a fresh baseline
  (fresh_baseline.py) three ways: the stable at ``100 - 2w``, ``<app>-baseline`` and the canary
  at ``w`` each (weights up to 50); a reset leaves the stable Service alone again;
- for a matched audience, a copy of each such rule is placed first, its matches ANDed with a
  header match (``Exact`` or ``RegularExpression``) or, for a cookie, a ``RegularExpression``
  match on the ``Cookie`` header, and its only backend the canary Service. That is the mark of
  Canarist's rules: no rule a person writes sends only to ``<app>-canary``, which Canarist owns;
  they are rebuilt from scratch on every write and dropped on reset.

Every other rule is left as the user wrote it; a rule that splits the stable Service with other
backends is refused rather than guessed at. The new rules are computed from the object as read,
so writing the same wish twice yields the same object (no write at all the second time), and are
sent as a JSON merge patch carrying the resourceVersion read (409: read again, compute again).
Comparisons apply the API's defaults (path prefix ``/``, Exact header matches, backend kind
Service and weight 1), because a real API server writes them into what it stores.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from analyzer.policy.traffic import (
    GATEWAY_API_MAX_MATCHES,
    Router,
    audience_refusals,
    sticky_refusal,
)
from workers.actions import Match
from workers.platforms.base import Failed, NotYet, PlatformError, Readiness, Ready, baseline_share
from workers.platforms.kubernetes.api import HTTPROUTES, Kube, Obj
from workers.platforms.kubernetes.desired import sized_for_router, stamped
from workers.platforms.kubernetes.target import Target

Rule = dict[str, Any]


class GatewayApiRouter:
    name = Router.GATEWAY_API

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def check(self, target: Target, weight: int, match: tuple[Match, ...]) -> None:
        """Any audience fits (headers, regular expressions, a cookie as a Cookie header match):
        only the route and its rule to the stable Service must exist. A fresh baseline gets a
        share of random requests, never a matched audience (the policy refuses it too)."""
        if target.fresh_baseline and match:
            raise PlatformError(
                "a fresh baseline cannot get the same share of a matched audience: a targeted "
                "rollout compares with the stable fleet (analysis.baseline stable)"
            )
        refusals = audience_refusals(Router.GATEWAY_API, match)  # the policy's checks say so too
        if refusals:
            raise PlatformError("; ".join(refusal.message for refusal in refusals))
        unsticky = sticky_refusal(Router.GATEWAY_API, target.traffic.sticky)  # and this too
        if unsticky is not None:
            raise PlatformError(f"traffic.sticky: {unsticky}")
        route = self.kube.get(HTTPROUTES, target.namespace, target.traffic.route)
        if route is None:
            raise PlatformError(f"no HTTPRoute {target.namespace}/{target.traffic.route}")
        routed_rules(route.get("spec", {}).get("rules") or [], target, weight, match)

    def set_traffic(self, target: Target, weight: int, match: tuple[Match, ...]) -> None:
        self._write(target, _split(weight, match), match)

    def reset(self, target: Target) -> None:
        if self.kube.get(HTTPROUTES, target.namespace, target.traffic.route) is not None:
            self._write(target, None, ())  # no route: nothing was ever sent to the canary

    def verify(self, target: Target, weight: int, match: tuple[Match, ...]) -> Readiness:
        split = _split(weight, match)
        route = self.kube.get(HTTPROUTES, target.namespace, target.traffic.route)
        if route is None and split is None:
            return Ready()
        if route is None:
            raise PlatformError(f"no HTTPRoute {target.namespace}/{target.traffic.route}")
        rules = route.get("spec", {}).get("rules") or []
        wanted = routed_rules(rules, target, split, match)
        if normalized(rules) != normalized(wanted):
            return NotYet(f"HTTPRoute {target.traffic.route} does not send {weight}% yet")
        return _accepted(route)

    def canary_replicas(self, stable: int, weight: int, match: tuple[Match, ...]) -> int:
        return sized_for_router(stable, weight, match)

    def _write(self, target: Target, weight: int | None, match: tuple[Match, ...]) -> None:
        wish = {"weight": weight or 0, "match": [_match_record(rule) for rule in match]}
        metadata = target.stamp(wish, owned=False)

        def change(current: Obj) -> Obj | None:
            rules = current.get("spec", {}).get("rules") or []
            wanted = routed_rules(rules, target, weight, match)
            if normalized(rules) == normalized(wanted) and stamped(current, metadata):
                return None
            return {"metadata": metadata, "spec": {"rules": wanted}}

        if self.kube.modify(HTTPROUTES, target.namespace, target.traffic.route, change) is None:
            raise PlatformError(f"no HTTPRoute {target.namespace}/{target.traffic.route}")


def routed_rules(
    rules: list[Rule], target: Target, weight: int | None, match: tuple[Match, ...]
) -> list[Rule]:
    """The route's rules with ``weight`` percent (None: reset) and ``match`` to the canary."""
    stable, canary = target.traffic.stable_service, target.traffic.canary_service
    ours = {stable, canary, target.baseline} if target.fresh_baseline else {stable, canary}
    fresh = baseline_share(weight or 0, target.fresh_baseline)
    inserted: list[Rule] = []
    kept: list[Rule] = []
    found = False
    for index, rule in enumerate(rules):
        refs = rule.get("backendRefs") or []
        names = {_service(ref) for ref in refs}
        if refs and names == {canary}:
            continue  # Canarist's own match rule: rebuilt below
        if stable not in names:
            kept.append(copy.deepcopy(rule))
            continue
        if not names <= ours:
            raise PlatformError(
                f"rule {index} of HTTPRoute {target.traffic.route} splits Service {stable} with "
                f"other backends ({', '.join(sorted(str(n) for n in names))}); canarist splits "
                "only rules whose sole backend is the stable Service"
            )
        found = True
        base = dict(next(r for r in refs if _service(r) == stable))
        base.pop("weight", None)
        split = [base]
        if weight is not None:
            split = [{**base, "weight": 100 - weight}, {**base, "name": canary, "weight": weight}]
        if weight is not None and fresh:
            split[0]["weight"] = 100 - weight - fresh
            split.insert(1, {**base, "name": target.baseline, "weight": fresh})
        kept.append({**copy.deepcopy(rule), "backendRefs": split})
        if match and weight is not None:
            inserted.append(_match_rule(rule, {**base, "name": canary}, match))
    if not found:
        raise PlatformError(
            f"HTTPRoute {target.traffic.route} has no rule sending to Service {stable} "
            "(traffic.stable_service)"
        )
    return inserted + kept


def _match_rule(rule: Rule, canary_ref: dict[str, Any], match: tuple[Match, ...]) -> Rule:
    """The user's rule for the audience only: each of its matches AND each audience match."""
    matches = []
    for user_match in rule.get("matches") or [{}]:
        for audience in match:
            headers = [*(user_match.get("headers") or []), _header(audience)]
            matches.append({**copy.deepcopy(user_match), "headers": headers})
    if len(matches) > GATEWAY_API_MAX_MATCHES:  # the policy's checks hold the audience to it
        raise PlatformError(
            f"the canary's HTTPRoute rule would have {len(matches)} matches ({len(match)} audience "
            f"rules times the route rule's own matches); the Gateway API allows "
            f"{GATEWAY_API_MAX_MATCHES}: match fewer"
        )
    copied = {k: copy.deepcopy(v) for k, v in rule.items() if k not in ("matches", "backendRefs")}
    copied.pop("name", None)  # rule names are unique within a route
    return {**copied, "matches": matches, "backendRefs": [canary_ref]}


def _header(rule: Match) -> dict[str, str]:
    if rule.kind == "cookie":
        value = rule.value if rule.regex else re.escape(rule.value)
        pattern = rf"^(.*;\s*)?{re.escape(rule.name)}={value}(;.*)?$"
        return {"type": "RegularExpression", "name": "Cookie", "value": pattern}
    kind = "RegularExpression" if rule.regex else "Exact"
    return {"type": kind, "name": rule.name, "value": rule.value}


def _service(ref: dict[str, Any]) -> str | None:
    if ref.get("group", "") != "" or ref.get("kind", "Service") != "Service":
        return None
    name = ref.get("name")
    return name if isinstance(name, str) else None


def normalized(rules: list[Rule]) -> list[Rule]:
    """Rules with the Gateway API's defaults filled in, as a real API server stores them."""
    result = []
    for written in rules:
        rule = copy.deepcopy(written)
        matches = rule.get("matches") or [{}]
        for user_match in matches:
            path = user_match.setdefault("path", {})
            path.setdefault("type", "PathPrefix")
            path.setdefault("value", "/")
            for header in user_match.get("headers") or []:
                header.setdefault("type", "Exact")
        rule["matches"] = matches
        for ref in rule.get("backendRefs") or []:
            ref.setdefault("group", "")
            ref.setdefault("kind", "Service")
            ref.setdefault("weight", 1)
        result.append(rule)
    return result


def _accepted(route: Obj) -> Readiness:
    """Failed when a gateway controller refused the current generation of the route."""
    generation = route.get("metadata", {}).get("generation")
    for parent in (route.get("status") or {}).get("parents") or []:
        for condition in parent.get("conditions") or []:
            current = condition.get("observedGeneration") in (None, generation)
            refused = condition.get("type") == "Accepted" and condition.get("status") == "False"
            if refused and current:
                why = f"{condition.get('reason', '')}: {condition.get('message', '')}"
                return Failed(f"HTTPRoute {route['metadata'].get('name')} not accepted: {why}")
    return Ready()


def _split(weight: int, match: tuple[Match, ...]) -> int | None:
    """The weight to write; None (the user's rules as written) when nothing goes to the canary."""
    return weight if weight or match else None


def _match_record(rule: Match) -> dict[str, Any]:
    return {"kind": rule.kind, "name": rule.name, "value": rule.value, "regex": rule.regex}
