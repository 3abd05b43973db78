"""The cluster for the ``kubernetes``-marked tests: kmock's emulator, or a real one.

With ``CANARIST_TEST_KUBECONFIG`` naming a kubeconfig the tests run against that cluster: they
create a namespace ``canarist-test-<random>`` (deleted at the end of the session), register the
HTTPRoute CRD from crds/ when the cluster has none, and expect no ingress or gateway controller.
Without it they run against kmock's emulator on a free loopback port (kube_stack.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.workers.platforms.kubernetes.kube_stack import Cluster, connect_real, start_emulator
from workers.platforms.kubernetes import KubernetesPlatform


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    kubeconfig = os.environ.get("CANARIST_TEST_KUBECONFIG")
    started, stop = connect_real(os.path.expanduser(kubeconfig)) if kubeconfig else start_emulator()
    try:
        yield started
    finally:
        stop()


@pytest.fixture()
def kube(cluster: Cluster) -> client.ApiClient:
    """A configured client for a platform under test."""
    return cluster.api_client()


@pytest.fixture()
def platform(kube: client.ApiClient) -> KubernetesPlatform:
    return KubernetesPlatform(kube, timeout=5.0)


@pytest.fixture()
def app() -> str:
    """A fresh app name per test: tests share the namespace, never their objects."""
    return f"shop{uuid.uuid4().hex[:6]}"
