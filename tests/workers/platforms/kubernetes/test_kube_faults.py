"""Faults injected with kmock reactions (emulator only): conflicts, errors and slow answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.workers.platforms.kubernetes.driving import drive, rollout
from tests.workers.platforms.kubernetes.emulator import Fault
from tests.workers.platforms.kubernetes.kube_stack import Cluster
from workers.actions import EnsureCanary, SetTraffic
from workers.errors import TemporaryError
from workers.platforms.base import PlatformError, Ready
from workers.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.kubernetes


@pytest.fixture()
def faults(cluster: Cluster) -> Iterator[list[Fault]]:
    if cluster.real:
        pytest.skip("faults are injected into the emulator only")
    injected: list[Fault] = []
    yield injected
    for fault in injected:
        fault.left = 0  # spent: later requests pass through


def user_app(cluster: Cluster, app: str) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.http_route(app, app)


@pytest.mark.parametrize(
    ("method", "resource", "fault"),
    [
        ("patch", "apps/v1/deployments", Fault(count=1, status=409)),
        ("patch", "gateway.networking.k8s.io/v1/httproutes", Fault(count=2, status=409)),
        ("get", "gateway.networking.k8s.io/v1/httproutes", Fault(count=2, status=500)),
        ("get", "apps/v1/deployments", Fault(count=1, status=429)),
        ("get", "apps/v1/deployments", Fault(count=1, delay=1.5)),  # past the 0.5 s timeout
    ],
    ids=["409-deployment", "409-route", "500", "429", "slow"],
)
def test_the_platform_survives_a_fault_and_gets_there(
    cluster: Cluster,
    kube: client.ApiClient,
    faults: list[Fault],
    app: str,
    method: str,
    resource: str,
    fault: Fault,
) -> None:
    user_app(cluster, app)
    platform = KubernetesPlatform(kube, timeout=0.5)
    state = rollout(cluster, app)
    faults.append(cluster.inject(method, resource, Fault(fault.left, fault.status, fault.delay)))
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(30), token="1:0:stage")
    assert answer == Ready()
    assert faults[0].hits == fault.left  # every injected fault was met, and survived
    assert cluster.route_weights(app) == [{app: 70, f"{app}-canary": 30}]


def test_an_api_that_stays_down_is_a_temporary_error_after_a_bounded_wait(
    cluster: Cluster, kube: client.ApiClient, faults: list[Fault], app: str
) -> None:
    user_app(cluster, app)
    platform = KubernetesPlatform(kube, timeout=0.5)  # the worker's default budget
    faults.append(cluster.inject("get", "apps/v1/deployments", Fault(count=50, status=503)))
    with pytest.raises(TemporaryError, match="503") as raised:
        platform.apply(rollout(cluster, app), EnsureCanary())
    # A blip is retried inline; an outage gives the worker back within about a second, and the
    # task is requeued after the wait the error carries (workers/tasks.py), never sleeping on.
    assert 2 <= faults[0].hits <= 4  # 0.2 + 0.4 s of backoff fit the 1 s budget, 0.8 more not
    assert raised.value.wait_seconds() >= 1.0


def test_a_forbidden_call_is_a_platform_error_with_the_api_message(
    cluster: Cluster, kube: client.ApiClient, faults: list[Fault], app: str
) -> None:
    user_app(cluster, app)
    platform = KubernetesPlatform(kube, timeout=0.5)
    faults.append(cluster.inject("post", "apps/v1/deployments", Fault(count=1, status=403)))
    with pytest.raises(PlatformError, match=r"create deployments .*403 injected 403"):
        platform.apply(rollout(cluster, app), EnsureCanary())
    assert faults[0].hits == 1  # not retried: permissions do not come back by waiting
