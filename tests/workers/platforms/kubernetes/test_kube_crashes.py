"""The crash and command matrix on Kubernetes (kmock's emulator, or a real cluster): a worker
killed between any two platform actions, and abort or full promotion through the API at every
stage with the worker that takes the command up killed before it acts. Each run ends with the
objects meaning what the rollout's final phase says: every pod of the app runs the version
that phase names (the templates of its ReplicaSets with pods), the stable Deployment at its
size, the stable Service selects that version, the HTTPRoute sends every request of every rule
to the stable Service, and the canary runs no pods.

Each strategy runs in one of four modes:

    fleet           compared with the stable fleet, submitted through the API
    fresh           analysis.baseline fresh on gateway_api: ``<app>-baseline`` takes the canary's
                    share of a three-way split and ends at zero pods and out of the route
    fresh-replicas  the same on replica counts (no route: the one Service selects all pods)
    held            GitOps: the Deployment is opted in and paused, its template changed as a Git
                    sync would, and the rollout submitted by the watch (``canarist watch``'s
                    door); it ends paused, every pod on the template its phase names
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.workers.platforms.kubernetes.gitops_stack import change, opt_in, running
from tests.workers.platforms.kubernetes.kube_stack import PAUSE, Cluster, service_weights
from tests.workers.rollout_harness import (
    STRATEGIES,
    Harness,
    command_at_every_stage,
    in_the_first_analysis,
    killed_before_every_call,
    policy_name,
    stage_count,
    write_policies,
)
from workers.platforms.kubernetes import KubernetesPlatform
from workers.platforms.kubernetes.api import Kube
from workers.platforms.kubernetes.gitops import GitOpsWatch, Seen
from workers.platforms.kubernetes.permissions import WATCH_PERMISSIONS
from workers.watch import IntakeDoor

pytestmark = pytest.mark.kubernetes
IMAGES = (PAUSE, PAUSE.replace(":3.9", ":3.10"))  # both exist, for a real cluster
REPLICAS = 2
_versions = itertools.count(2)

CASES = [
    *[pytest.param(strategy, "fleet", id=strategy) for strategy in STRATEGIES],
    pytest.param("canary", "fresh", id="canary-fresh"),
    pytest.param("canary", "fresh-replicas", id="canary-fresh-replicas"),
    pytest.param("canary", "held", id="canary-held"),
    pytest.param("rolling", "held", id="rolling-held"),
]


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policies(tmp_path_factory.mktemp("policies"))


def policy_of(strategy: str, mode: str) -> str:
    return {"fresh": "canary-fresh", "fresh-replicas": "canary-fresh-replicas"}.get(
        mode, policy_name(strategy)
    )


def serving(cluster: Cluster, app: str) -> tuple[str, str]:
    """The one (version label, image) every pod of ``app`` runs."""
    found = running(cluster, app)
    assert len(found) == 1, f"pods of {app} run {found}"
    (only,) = found
    return only


def shares(rule: dict[str, Any]) -> dict[str, float]:
    """Each backend's share of a rule's requests (a missing weight is Gateway API's 1)."""
    weights = service_weights(rule)
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items() if weight}


def replicas(cluster: Cluster, name: str) -> int | None:
    found = cluster.get("deployment", name)
    return None if found is None else int(found["spec"]["replicas"])


@dataclass
class World:
    """The user's app, runs of one strategy in one mode, and the check of what serves."""

    cluster: Cluster
    app: str
    policies: Path
    strategy: str
    mode: str
    images: dict[str, str] = field(default_factory=dict)  # version -> image
    baseline_sizes: list[int] = field(default_factory=list)  # <app>-baseline's, per settle

    def __post_init__(self) -> None:
        self.cluster.deployment(self.app, replicas=REPLICAS)
        self.cluster.service(self.app, self.app)
        if self.mode != "fresh-replicas":
            self.cluster.http_route(self.app, self.app)
        if self.mode == "held":
            opt_in(self.cluster, self.app, policy_of(self.strategy, self.mode))

    def settle(self) -> None:
        """The controllers act; the fresh baseline's size is noted each time."""
        self.cluster.settle()
        if self.mode.startswith("fresh"):
            self.baseline_sizes.append(replicas(self.cluster, f"{self.app}-baseline") or 0)

    def start(self) -> tuple[Harness, str, str, str]:
        """A new run, each a new version with the other image; every worker a new platform
        over a new client."""
        cluster, app = self.cluster, self.app
        runner = Harness(
            self.policies,
            lambda: KubernetesPlatform(cluster.api_client(), timeout=5.0),
            settle=self.settle,
            poll=1.0 if cluster.real else 0.0,
        )
        old, image = serving(cluster, app)
        new, new_image = f"v{next(_versions)}", IMAGES[1 - IMAGES.index(image)]
        self.images.setdefault(old, image)
        self.images[new] = new_image
        if self.mode == "held":  # Git names the new version; the watch submits the rollout
            change(cluster, app, new_image, new)
            kube = Kube(cluster.api_client(), timeout=2.0, permissions=WATCH_PERMISSIONS)
            watch = GitOpsWatch(kube, IntakeDoor(runner.intake), [cluster.namespace])
            deployment = cluster.get("deployment", app)
            assert deployment is not None
            assert watch.handle(deployment) is Seen.SUBMITTED
            assert running(cluster, app) == {(old, image)}, "paused: no pod runs it before"
            rollout_id = runner.store.latest_for(app, cluster.namespace)
            assert rollout_id is not None
            assert runner.state(rollout_id).spec.from_manifest
        else:
            rollout_id = runner.submit(
                app=app, namespace=cluster.namespace, version=new,
                policy=policy_of(self.strategy, self.mode), platform="kubernetes",
                image=new_image, baseline=f'app="{app}",version="{old}"',
                canary=f'app="{app}",version="{new}"',
            )  # fmt: skip
        fresh = bool(runner.state(rollout_id).spec.fresh_baseline_selector)
        assert fresh is self.mode.startswith("fresh")
        return runner, rollout_id, old, new

    def serves_only(self, version: str, why: str) -> None:
        cluster, app = self.cluster, self.app
        assert running(cluster, app) == {(version, self.images[version])}, why
        stable = cluster.get("deployment", app)
        assert stable is not None
        assert stable["spec"]["replicas"] == REPLICAS, why
        if self.mode == "held":  # paused again (promoted) or still (aborted): as in Git
            assert stable["spec"].get("paused") is True, f"{why}: the Deployment is not paused"
        else:
            assert stable["spec"]["template"]["metadata"]["labels"]["version"] == version, why
        service = cluster.get("service", app)
        assert service is not None
        assert service["spec"]["selector"].get("version") in (None, version), why
        if self.mode != "fresh-replicas":
            route = cluster.get("httproute", app)
            assert route is not None
            assert [shares(rule) for rule in route["spec"]["rules"]] == [{app: 1.0}], why
        assert replicas(cluster, f"{app}-canary") in (None, 0), why
        if self.mode.startswith("fresh"):  # it ran, and runs no more
            assert replicas(cluster, f"{app}-baseline") == 0, f"{why}: the baseline runs"
            assert max(self.baseline_sizes) > 0, f"{why}: no fresh baseline ever ran"
        else:
            assert cluster.get("deployment", f"{app}-baseline") is None, why


Worlds = Callable[[str, str], World]


@pytest.fixture
def world(cluster: Cluster, policies: Path, app: str) -> Iterator[Worlds]:
    """``world(strategy, mode)`` for this test's app; an opted-in app is opted out after it
    (the namespace is shared with the GitOps tests' watches)."""
    made: list[World] = []

    def make(strategy: str, mode: str) -> World:
        made.append(World(cluster, app, policies, strategy, mode))
        return made[-1]

    yield make
    if any(found.mode == "held" for found in made):
        with contextlib.suppress(ApiException):  # absent already
            cluster.apps.delete_namespaced_deployment(app, cluster.namespace)


def runs(sizes: list[int]) -> list[bool]:
    """Whether the fresh baseline ran, once per change of that."""
    return [running for running, _ in itertools.groupby(size > 0 for size in sizes)]


@pytest.mark.parametrize(("strategy", "mode"), CASES)
def test_a_worker_killed_between_any_two_actions_ends_promoted_on_kubernetes(
    world: Worlds, strategy: str, mode: str
) -> None:
    found = world(strategy, mode)
    killed_before_every_call(found.start, found.serves_only)


@pytest.mark.parametrize(("strategy", "mode"), CASES)
@pytest.mark.parametrize("command", ["abort", "promote-full"])
def test_a_command_at_every_stage_ends_where_it_says_on_kubernetes(
    world: Worlds, policies: Path, strategy: str, mode: str, command: str
) -> None:
    found = world(strategy, mode)
    stages = stage_count(policies, policy_of(strategy, mode))
    command_at_every_stage(found.start, stages, command, found.serves_only)


@pytest.mark.parametrize(("strategy", "mode"), CASES)
@pytest.mark.parametrize("command", ["pause-resume", "abort-retry"])
def test_pause_resume_and_retry_in_the_first_analysis_on_kubernetes(
    world: Worlds, strategy: str, mode: str, command: str
) -> None:
    found = world(strategy, mode)
    in_the_first_analysis(found.start, command, found.serves_only)
    if mode.startswith("fresh"):
        # Ran for the analysis and stopped at the end; an abort stops it and the retry's first
        # stage starts it again.
        expected = [False, True, False, True, False] if command == "abort-retry" else None
        assert runs(found.baseline_sizes) == (expected or [False, True, False]), (
            found.baseline_sizes
        )
