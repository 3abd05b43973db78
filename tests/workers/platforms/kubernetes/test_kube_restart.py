"""A restarted worker (a new platform instance) adopts what an earlier one wrote."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.workers.platforms.kubernetes.driving import rollout
from tests.workers.platforms.kubernetes.kube_stack import Cluster
from workers.actions import EnsureCanary, Promote, SetTraffic
from workers.platforms.base import NotYet, Ready
from workers.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.kubernetes


def test_a_new_instance_reads_the_desired_state_from_the_objects(
    cluster: Cluster, app: str
) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.http_route(app, app)
    state = replace(rollout(cluster, app), awaiting="1:0:stage")
    before_crash = KubernetesPlatform(cluster.api_client())
    before_crash.apply(state, EnsureCanary())
    before_crash.apply(state, SetTraffic(40))
    del before_crash  # the worker dies between apply and the next readiness poll

    restarted = KubernetesPlatform(cluster.api_client())
    wants = (EnsureCanary(), SetTraffic(40))
    answer = restarted.readiness(state, wants)
    assert isinstance(answer, NotYet)  # the canary's pods are not available yet
    cluster.settle()
    canary = cluster.get("deployment", f"{app}-canary")
    route = cluster.get("httproute", app)
    events = len(cluster.events(app))
    # the first apply waited for the canary (created at 0 replicas, generation 1 not observed
    # yet), so the Service was never pinned to the stable version: that is what is awaited
    assert restarted.readiness(state, wants) == NotYet(
        f"Service {app} selects {{'app': '{app}'}}, not version=v1"
    )
    restarted.apply(state, EnsureCanary())  # the engine's re-assert, in the new worker
    restarted.apply(state, SetTraffic(40))
    assert restarted.readiness(state, wants) == Ready()
    assert len(cluster.events(app)) == events  # adopted: the same wish, no new transition
    adopted = cluster.get("deployment", f"{app}-canary")
    assert canary is not None and adopted is not None
    assert adopted["metadata"]["generation"] == canary["metadata"]["generation"]
    assert route is not None


def test_readiness_of_an_ask_that_never_reached_the_cluster_is_not_yet(
    cluster: Cluster, app: str
) -> None:
    cluster.deployment(app)
    state = replace(rollout(cluster, app, router="replicas"), awaiting="1:0:stage")
    first = KubernetesPlatform(cluster.api_client())
    first.apply(state, EnsureCanary())
    first.apply(state, SetTraffic(20))
    cluster.settle()
    assert first.readiness(state, (EnsureCanary(), SetTraffic(20))) == Ready()

    later = replace(state, awaiting="1:2:promote")  # saved, then the worker died before acting
    restarted = KubernetesPlatform(cluster.api_client())
    answer = restarted.readiness(later, (Promote(),))
    assert answer == NotYet(
        f"{app}-canary records weight 20%, 1 canary pod(s); the rollout requires a promote"
    )
    restarted.apply(later, Promote())
    for _ in range(5):
        cluster.settle()
        restarted.apply(later, Promote())
    assert restarted.readiness(later, (Promote(),)) == Ready()
