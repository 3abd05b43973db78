"""A fresh baseline (``analysis.baseline: fresh``): ``<app>-baseline`` beside the canary, with its
size and its share of requests, removed on promotion and on rollback.

Routes are asserted by what they mean (the weight each Service gets), not by their shape: an API
server fills in defaults (backendRef weight 1, group "", kind Service).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from analyzer.policy import load_policy_text
from tests.workers.platforms.kubernetes.driving import EngineRun, drive, rollout
from tests.workers.platforms.kubernetes.kube_stack import PAUSE, Cluster
from tests.workers.rollout_driver import METRICS, healthy
from workers.actions import EnsureCanary, Promote, Rollback, SetTraffic
from workers.platforms.base import Failed, NotYet, PlatformError, Ready
from workers.platforms.kubernetes import KubernetesPlatform
from workers.state import Phase, RolloutState

pytestmark = pytest.mark.kubernetes


def fresh(state: RolloutState) -> RolloutState:
    selector = f'app="{state.app}",pod=~"{state.app}-baseline-.+"'
    return replace(state, spec=replace(state.spec, fresh_baseline_selector=selector))


def weights(cluster: Cluster, route: str) -> dict[str, int]:
    """Percent of requests per Service over the route's rules (one rule here); a backendRef
    without a weight has the API's default, 1, which is all of a rule with one backend."""
    found = cluster.get("httproute", route)
    assert found is not None
    (rule,) = found["spec"]["rules"]
    refs: list[dict[str, Any]] = rule["backendRefs"]
    assert all(ref.get("kind", "Service") == "Service" and not ref.get("group") for ref in refs)
    share: Counter[str] = Counter()
    for ref in refs:
        share[ref["name"]] += ref.get("weight", 1)
    total = sum(share.values())
    return {name: round(100 * weight / total) for name, weight in share.items() if total}


def replicas(cluster: Cluster, name: str) -> int | None:
    found = cluster.get("deployment", name)
    return None if found is None else int(found["spec"]["replicas"])


def user_app(cluster: Cluster, app: str, replicas: int = 4, route: bool = True) -> None:
    cluster.deployment(app, replicas=replicas)
    cluster.service(app, app)
    if route:
        cluster.http_route(app, app)


def test_gateway_api_splits_three_ways_and_promotion_removes_the_baseline(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    state = fresh(rollout(cluster, app))
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage")
    assert answer == Ready()
    assert weights(cluster, app) == {app: 50, f"{app}-baseline": 25, f"{app}-canary": 25}
    assert replicas(cluster, f"{app}-canary") == replicas(cluster, f"{app}-baseline") == 1

    baseline = cluster.get("deployment", f"{app}-baseline")
    assert baseline is not None
    labels = baseline["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "canarist"
    pod_labels = baseline["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["canarist.dev/role"] == "baseline" and "version" not in pod_labels
    assert baseline["spec"]["selector"]["matchLabels"]["canarist.dev/role"] == "baseline"
    (container,) = baseline["spec"]["template"]["spec"]["containers"]
    assert container["image"] == PAUSE  # the stable's image, not the canary's
    # Neither the stable Service (pinned to v1) nor the canary's selects the baseline pods; the
    # baseline's own Service does.
    stable_service = cluster.get("service", app)
    fresh_service = cluster.get("service", f"{app}-baseline")
    assert stable_service is not None and fresh_service is not None
    assert not _selects(stable_service, pod_labels)
    assert _selects(fresh_service, pod_labels)
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None
    assert not _matches(canary["spec"]["selector"]["matchLabels"], pod_labels)

    assert drive(platform, cluster, state, SetTraffic(50), token="1:2:stage") == Ready()
    assert weights(cluster, app) == {app: 0, f"{app}-baseline": 50, f"{app}-canary": 50}
    assert replicas(cluster, f"{app}-canary") == replicas(cluster, f"{app}-baseline") == 2

    assert drive(platform, cluster, state, SetTraffic(100), token="1:4:stage") == Ready()
    assert weights(cluster, app) == {app: 0, f"{app}-canary": 100}
    assert replicas(cluster, f"{app}-baseline") == 0

    assert drive(platform, cluster, state, Promote(), token="1:5:promote") == Ready()
    assert weights(cluster, app) == {app: 100}
    assert replicas(cluster, f"{app}-canary") == replicas(cluster, f"{app}-baseline") == 0


def test_an_abort_removes_canary_and_baseline_and_sends_everything_to_stable(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    state = fresh(rollout(cluster, app))
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(10), token="1:0:stage")
    assert answer == Ready()
    assert weights(cluster, app) == {app: 80, f"{app}-baseline": 10, f"{app}-canary": 10}
    assert drive(platform, cluster, state, Rollback("abort"), token="1:1:rollback") == Ready()
    assert weights(cluster, app) == {app: 100}
    assert replicas(cluster, f"{app}-canary") == replicas(cluster, f"{app}-baseline") == 0
    assert replicas(cluster, app) == 4


def test_a_baseline_lost_between_two_actions_is_awaited_and_re_asserted(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    state = fresh(rollout(cluster, app))
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage")
    assert answer == Ready()
    scale_to_zero = {"spec": {"replicas": 0}}
    cluster.apps.patch_namespaced_deployment(f"{app}-baseline", cluster.namespace, scale_to_zero)
    cluster.settle()
    asked = replace(state, awaiting="1:0:stage")
    assert platform.readiness(asked, (EnsureCanary(), SetTraffic(25))) != Ready()
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage")
    assert answer == Ready() and replicas(cluster, f"{app}-baseline") == 1


def test_a_baseline_never_created_before_a_crash_is_created_by_the_re_assert(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    state = fresh(rollout(cluster, app))
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage")
    assert answer == Ready()
    cluster.apps.delete_namespaced_deployment(f"{app}-baseline", cluster.namespace)
    asked = replace(state, awaiting="1:0:stage")
    answer = platform.readiness(asked, (EnsureCanary(), SetTraffic(25)))
    assert isinstance(answer, NotYet) and f"{app}-baseline" in (answer.detail or "")
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage")
    assert answer == Ready() and replicas(cluster, f"{app}-baseline") == 1


def test_the_engine_walks_a_fresh_baseline_to_promotion(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app, replicas=2)
    steps = (
        "{type: canary, steps: [{set_weight: 50}, {analyze: {duration: 2m}}, {set_weight: 100}]}"
    )
    chosen = load_policy_text(
        f"name: small\nanalysis: {{interval: 1m, baseline: fresh}}\n{METRICS}\n"
        f"strategy: {steps}\ntraffic: {{router: gateway_api}}\n"
    )
    run = EngineRun(platform, cluster, chosen, fresh(rollout(cluster, app)))
    analysing = lambda state: state.analysis_due(run.now + 3600) is not None  # noqa: E731
    run.run(healthy(chosen), until=analysing)
    assert weights(cluster, app) == {app: 0, f"{app}-baseline": 50, f"{app}-canary": 50}
    assert replicas(cluster, f"{app}-canary") == replicas(cluster, f"{app}-baseline") == 1

    run.run(healthy(chosen), until=lambda state: state.phase.terminal)
    assert run.state.phase is Phase.PROMOTED
    assert weights(cluster, app) == {app: 100}
    assert replicas(cluster, f"{app}-canary") == replicas(cluster, f"{app}-baseline") == 0


def test_replica_counts_give_baseline_and_canary_the_same_share(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app, replicas=6, route=False)
    state = fresh(rollout(cluster, app, router="replicas"))
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(20), token="1:0:stage")
    assert answer == Ready()
    canary, baseline = replicas(cluster, f"{app}-canary"), replicas(cluster, f"{app}-baseline")
    assert canary == baseline == 2  # 2 of 6 + 2 + 2 pods: 20% each
    # The one Service selects the pods of all three: its share is the pods'.
    service = cluster.get("service", app)
    found = cluster.get("deployment", f"{app}-baseline")
    assert service is not None and found is not None
    assert _selects(service, found["spec"]["template"]["metadata"]["labels"])
    assert drive(platform, cluster, state, Rollback("abort"), token="1:1:rollback") == Ready()
    assert replicas(cluster, f"{app}-baseline") == 0


def test_ingress_nginx_is_refused_rather_than_compared_with_the_stable_fleet(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app, route=False)
    cluster.ingress(app, app)
    state = fresh(rollout(cluster, app, router="nginx_ingress"))
    answer = platform.readiness(replace(state, awaiting="1:0:stage"), (EnsureCanary(),))
    assert isinstance(answer, Failed)
    assert "ingress-nginx allows only one canary Ingress per host" in answer.reason
    with pytest.raises(PlatformError, match="cannot give a fresh baseline the canary's share"):
        platform.apply(state, SetTraffic(10))
    assert cluster.get("deployment", f"{app}-baseline") is None
    assert cluster.get("ingress", f"{app}-canary") is None


def test_a_foreign_baseline_deployment_is_refused_and_a_rollback_leaves_it_alone(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    cluster.deployment(f"{app}-baseline", replicas=1)  # a person's, not Canarist's
    state = fresh(rollout(cluster, app))
    with pytest.raises(PlatformError, match="is not managed by canarist"):
        platform.apply(state, EnsureCanary())
    assert cluster.get("deployment", f"{app}-canary") is None  # refused before any write
    answer = platform.readiness(replace(state, awaiting="1:0:stage"), (EnsureCanary(),))
    assert isinstance(answer, Failed) and "is not managed by canarist" in answer.reason
    assert drive(platform, cluster, state, Rollback("refused"), token="1:1:rollback") == Ready()
    assert replicas(cluster, f"{app}-baseline") == 1


def test_without_a_fresh_baseline_nothing_else_runs(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    state = rollout(cluster, app)
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage")
    assert answer == Ready()
    assert weights(cluster, app) == {app: 75, f"{app}-canary": 25}
    assert cluster.get("deployment", f"{app}-baseline") is None
    assert cluster.get("service", f"{app}-baseline") is None


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _selects(service: dict[str, Any], labels: dict[str, str]) -> bool:
    return _matches(service["spec"].get("selector") or {}, labels)
