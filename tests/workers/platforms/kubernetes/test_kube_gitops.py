"""Canaries from a Deployment change: the GitOps watch submits, the platform holds and releases.

A user opts a Deployment in (``canarist.dev/policy`` and ``spec.paused: true``) and changes its
image as a Git sync would; the watch (gitops.py) submits the rollout through the real intake over
the session's Redis, and the real tasks drive it on the cluster, the Deployment controller played
by ``Cluster.settle`` (on a real cluster, the real one). Assertions read what a user would: the
rollout's spec, the Deployment, and the templates of the ReplicaSets that have pods.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes.client.exceptions import ApiException

from canarist.demo.stack import ServiceProcess
from tests.waiting import wait_until
from tests.workers.conftest import DEMO_POLICY, FakeClock, FakeSource, Queued, task_runtime
from tests.workers.platforms.kubernetes.emulator import Fault
from tests.workers.platforms.kubernetes.gitops_stack import change, opt_in, running
from tests.workers.platforms.kubernetes.kube_stack import PAUSE, Cluster
from workers.intake import Intake
from workers.notify.memory import MemoryNotifier
from workers.platforms.kubernetes import KubernetesPlatform
from workers.platforms.kubernetes.api import Kube
from workers.platforms.kubernetes.gitops import GitOpsWatch, Seen
from workers.platforms.kubernetes.permissions import WATCH_PERMISSIONS
from workers.state import Phase, RolloutState
from workers.store import RedisStateStore, store_from_url
from workers.tasks import Runtime, advance
from workers.watch import IntakeDoor

pytestmark = pytest.mark.kubernetes

V2_IMAGE = PAUSE.replace(":3.9", ":3.10")
V3_IMAGE = PAUSE.replace(":3.9", ":3.8")
CANARIST = Path(sys.executable).with_name("canarist")
ROOT = Path(__file__).resolve().parents[4]


@dataclass
class Stack:
    cluster: Cluster
    store: RedisStateStore
    intake: Intake
    runtime: Runtime
    queued: Queued
    clock: FakeClock
    source: FakeSource
    oncall: MemoryNotifier

    def watch(self) -> GitOpsWatch:
        """A watch process as ``canarist watch`` starts it (a new one is a restart)."""
        kube = Kube(self.cluster.api_client(), timeout=2.0, permissions=WATCH_PERMISSIONS)
        return GitOpsWatch(kube, IntakeDoor(self.intake), [self.cluster.namespace], watch_seconds=1)

    def rollouts(self, app: str) -> list[RolloutState]:
        return [s for s in self.intake.list(self.cluster.namespace) if s.app == app]

    def latest(self, app: str) -> RolloutState:
        rollout_id = self.store.latest_for(app, self.cluster.namespace)
        assert rollout_id is not None, f"no rollout of {app}"
        return self.store.load(rollout_id).state

    def drive(
        self,
        app: str,
        rollout_id: str,
        wakes: int = 400,
        between: Callable[[], None] = lambda: None,
    ) -> RolloutState:
        """Run the app's queued tasks and lane hand-overs until ``rollout_id`` has ended;
        ``between`` runs after each task, before the controller acts."""
        for _ in range(wakes):
            self.runtime.delivery.run()
            state = self.store.load(rollout_id).state
            if state.phase.terminal and state.awaiting is None:
                return state
            mine = [item for item in self.queued.advance if item[0].startswith(f"{app}-")]
            assert mine, f"nothing queued for {rollout_id}: {state}"
            self.queued.advance.remove(mine[0])
            self.clock.advance(mine[0][2])
            between()
            self.cluster.settle()
            advance(self.runtime, mine[0][0], mine[0][1])
        raise AssertionError(f"{rollout_id} not ended after {wakes} wake-ups")

    def events(self, app: str) -> list[dict[str, Any]]:
        """The watch's Events on the Deployment ``app``."""
        answer = self.cluster.core.list_namespaced_event(
            self.cluster.namespace, _preload_content=False
        )
        return [
            event
            for event in json.loads(answer.data).get("items") or []
            if event.get("involvedObject", {}).get("name") == app
            and event.get("reportingComponent") == "canarist-watch"
        ]

    def deployment(self, app: str) -> dict[str, Any]:
        found = self.cluster.get("deployment", app)
        assert found is not None
        return found


@pytest.fixture
def stack(
    cluster: Cluster,
    platform: KubernetesPlatform,
    redis_server: ServiceProcess,
    policy_dir: Path,
    clock: FakeClock,
    queued: Queued,
    app: str,
) -> Iterator[Stack]:
    store = RedisStateStore.from_url(redis_server.url, prefix=f"gitops:{uuid.uuid4().hex}:")
    intake = Intake(
        store, policy_dir, clock, queued.enqueue, alert_routes={"oncall"}, on_outbox=queued.wake
    )
    source, oncall = FakeSource(), MemoryNotifier()
    runtime = task_runtime(store, intake, source, platform, clock, queued, oncall)
    try:
        yield Stack(cluster, store, intake, runtime, queued, clock, source, oncall)
    finally:
        store.close()
        for name in (app, f"{app}-canary"):  # the namespace is shared: opt the app out of it
            with contextlib.suppress(ApiException):  # absent already
                cluster.apps.delete_namespaced_deployment(name, cluster.namespace)


ROLLING = DEMO_POLICY.replace("name: demo", "name: rolling-demo").split("strategy:")[0] + (
    "strategy:\n  type: rolling\n  batches:\n    - replicas: 1\n      analyze: 10s\n"
    "    - percent: 100\nalerts: [oncall]\n"
)


def opted_in(stack: Stack, app: str, paused: bool = True, policy: str = "demo") -> None:
    stack.cluster.deployment(app)  # v1, four pods
    opt_in(stack.cluster, app, policy, paused=paused)


def test_a_changed_image_starts_a_rollout_by_itself_and_a_healthy_one_is_promoted(
    stack: Stack, app: str
) -> None:
    opted_in(stack, app)
    watch, stop = stack.watch(), threading.Event()
    follower = threading.Thread(target=watch.follow, args=(stack.cluster.namespace, stop))
    follower.start()
    try:
        change(stack.cluster, app, V2_IMAGE, "v2")
        wait_until(
            "the watch to submit", lambda: stack.store.latest_for(app, stack.cluster.namespace), 30
        )
    finally:
        stop.set()
        follower.join(30)
    state = stack.latest(app)
    assert (state.spec.version, dict(state.spec.images)) == ("v2", {app: V2_IMAGE})
    assert (state.spec.platform, state.policy) == ("kubernetes", "demo")
    assert state.spec.baseline_selector == f'app="{app}",version="v1"'
    assert state.spec.canary_selector == f'app="{app}",version="v2"'
    assert running(stack.cluster, app) == {("v1", PAUSE)}, "paused: no pod runs v2 before"
    assert [e["reason"] for e in stack.events(app)] == ["CanarySubmitted"]

    assert stack.drive(app, state.id).phase is Phase.PROMOTED
    deployment = stack.deployment(app)
    assert deployment["spec"].get("paused") is True, "paused again: the live object equals Git"
    assert running(stack.cluster, app) == {("v2", V2_IMAGE)}
    assert stack.deployment(f"{app}-canary")["spec"]["replicas"] == 0
    stack.watch().sync(stack.cluster.namespace)  # promoted and paused again: nothing to start
    assert len(stack.rollouts(app)) == 1


def test_a_bad_version_is_aborted_and_every_pod_keeps_the_old_template(
    stack: Stack, app: str
) -> None:
    opted_in(stack, app)
    change(stack.cluster, app, V2_IMAGE, "v2")
    watch = stack.watch()
    assert watch.handle(stack.deployment(app)) is Seen.SUBMITTED
    stack.source.canary_errors = 30.0

    state = stack.drive(app, stack.latest(app).id)

    assert state.phase is Phase.ABORTED
    assert running(stack.cluster, app) == {("v1", PAUSE)}
    assert stack.deployment(app)["spec"].get("paused") is True, "still held: Git is the user's"
    assert watch.handle(stack.deployment(app)) is Seen.ALREADY  # no second try of a bad template
    reasons = [e["reason"] for e in stack.events(app)]
    assert sorted(reasons) == ["CanaryAborted", "CanarySubmitted"]
    aborted = next(e for e in stack.events(app) if e["reason"] == "CanaryAborted")
    assert aborted["type"] == "Warning" and "revert the image in Git" in aborted["message"]
    (alert,) = [notice for notice in stack.oncall.notices if notice.kind == "aborted"]
    assert f"Deployment {stack.cluster.namespace}/{app} still names v2: revert it in Git" in (
        alert.reason
    ), "on-call reads in the alert that Git is theirs to revert"


@pytest.mark.parametrize(
    ("canary_errors", "outcome"), [(1.0, Phase.PROMOTED), (30.0, Phase.ABORTED)]
)
def test_a_rolling_release_of_a_held_template_moves_batches_and_ends_at_full_size(
    stack: Stack, app: str, policy_dir: Path, canary_errors: float, outcome: Phase
) -> None:
    (policy_dir / "rolling-demo.yaml").write_text(ROLLING)
    opted_in(stack, app, policy="rolling-demo")
    change(stack.cluster, app, V2_IMAGE, "v2")
    assert stack.watch().handle(stack.deployment(app)) is Seen.SUBMITTED
    stack.source.canary_errors = canary_errors

    assert stack.drive(app, stack.latest(app).id).phase is outcome

    deployment = stack.deployment(app)
    assert (deployment["spec"]["replicas"], deployment["spec"].get("paused")) == (4, True)
    expected = ("v2", V2_IMAGE) if outcome is Phase.PROMOTED else ("v1", PAUSE)
    assert running(stack.cluster, app) == {expected}
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["version"] == "v2", "Git's template is left as written"


def test_a_gitops_tool_pausing_the_deployment_again_mid_promotion_does_not_stop_it(
    stack: Stack, app: str
) -> None:
    """Argo CD's self-heal or Flux's drift correction puts Git's paused: true back while the
    promotion has it unpaused: the promotion unpauses it again until the new version runs."""
    opted_in(stack, app)
    change(stack.cluster, app, V2_IMAGE, "v2")
    assert stack.watch().handle(stack.deployment(app)) is Seen.SUBMITTED
    corrected: list[int] = []

    def self_heal() -> None:
        if not corrected and not stack.deployment(app)["spec"].get("paused"):
            opt_in(stack.cluster, app, "demo", paused=True)  # what Git says
            corrected.append(1)

    state = stack.drive(app, stack.latest(app).id, between=self_heal)

    assert corrected, "the promotion unpaused the Deployment and the tool paused it again"
    assert state.phase is Phase.PROMOTED
    assert running(stack.cluster, app) == {("v2", V2_IMAGE)}
    assert stack.deployment(app)["spec"].get("paused") is True


def test_an_abort_during_the_promotion_pauses_the_deployment_again_on_the_old_pods(
    stack: Stack, app: str
) -> None:
    """The promotion has unpaused the Deployment when on-call aborts: the rollback puts the old
    pods back and pauses it again, so the next change in Git is held for its own canary instead
    of replacing every pod at once."""
    opted_in(stack, app)
    change(stack.cluster, app, V2_IMAGE, "v2")
    assert stack.watch().handle(stack.deployment(app)) is Seen.SUBMITTED
    rollout_id = stack.latest(app).id
    aborted: list[Phase] = []

    def abort_once_unpaused() -> None:
        if not aborted and not stack.deployment(app)["spec"].get("paused"):
            result = stack.intake.command(rollout_id, "abort", "on-call")
            aborted.append(result.state.phase)

    state = stack.drive(app, rollout_id, between=abort_once_unpaused)

    assert aborted, "the promotion unpaused the Deployment and the abort came then"
    assert state.phase is Phase.ABORTED
    assert running(stack.cluster, app) == {("v1", PAUSE)}
    assert stack.deployment(app)["spec"].get("paused") is True, "held again, as Git says"
    change(stack.cluster, app, V3_IMAGE, "v3")  # the next commit waits for its canary
    assert running(stack.cluster, app) == {("v1", PAUSE)}
    assert stack.watch().handle(stack.deployment(app)) is Seen.SUBMITTED


def test_a_second_change_supersedes_the_first_rollout(stack: Stack, app: str) -> None:
    opted_in(stack, app)
    watch = stack.watch()
    change(stack.cluster, app, V2_IMAGE, "v2")
    assert watch.handle(stack.deployment(app)) is Seen.SUBMITTED
    first = stack.latest(app).id
    change(stack.cluster, app, V3_IMAGE, "v3")
    assert watch.handle(stack.deployment(app)) is Seen.SUBMITTED
    second = stack.latest(app)
    assert second.supersedes == first and second.spec.version == "v3"

    assert stack.drive(app, second.id).phase is Phase.PROMOTED
    assert stack.store.load(first).state.superseded_by == second.id
    assert running(stack.cluster, app) == {("v3", V3_IMAGE)}
    assert len(stack.rollouts(app)) == 2


def test_a_restarted_watch_submits_nothing_twice(stack: Stack, app: str) -> None:
    opted_in(stack, app)
    change(stack.cluster, app, V2_IMAGE, "v2")
    stack.watch().sync(stack.cluster.namespace)
    rollout = stack.latest(app)

    restarted = stack.watch()  # a new process: it lists everything again
    restarted.sync(stack.cluster.namespace)
    assert restarted.handle(stack.deployment(app)) is Seen.ALREADY
    assert [s.id for s in stack.rollouts(app)] == [rollout.id]
    assert [e["reason"] for e in stack.events(app)] == ["CanarySubmitted"]
    assert stack.drive(app, rollout.id).phase is Phase.PROMOTED
    assert stack.watch().handle(stack.deployment(app)) is Seen.STEADY


def test_a_deployment_without_the_annotation_is_ignored(stack: Stack, app: str) -> None:
    stack.cluster.deployment(app)
    stack.cluster.apps.patch_namespaced_deployment(
        app, stack.cluster.namespace, {"spec": {"paused": True}}
    )
    change(stack.cluster, app, V2_IMAGE, "v2")
    assert stack.watch().handle(stack.deployment(app)) is Seen.IGNORED
    assert stack.rollouts(app) == [] and stack.events(app) == []


def test_an_unpaused_deployment_gets_a_warning_and_no_rollout(stack: Stack, app: str) -> None:
    opted_in(stack, app, paused=False)
    change(stack.cluster, app, V2_IMAGE, "v2")
    watch = stack.watch()
    assert watch.handle(stack.deployment(app)) is Seen.REFUSED
    assert watch.handle(stack.deployment(app)) is Seen.REFUSED
    assert stack.rollouts(app) == []
    [event] = stack.events(app)  # once per template, however often it is seen
    assert (event["type"], event["reason"]) == ("Warning", "CanaryNeedsPause")
    assert "paused: true" in event["message"]


def test_a_template_without_a_version_label_is_refused(stack: Stack, app: str) -> None:
    opted_in(stack, app)
    change(stack.cluster, app, V2_IMAGE, None)
    assert stack.watch().handle(stack.deployment(app)) is Seen.REFUSED
    assert stack.rollouts(app) == []
    [event] = stack.events(app)
    assert (event["type"], event["reason"]) == ("Warning", "CanaryVersionMissing")
    assert running(stack.cluster, app) == {("v1", PAUSE)}


def test_an_expired_watch_lists_again_and_misses_nothing(
    stack: Stack, app: str, caplog: pytest.LogCaptureFixture
) -> None:
    if stack.cluster.real:
        pytest.skip("410 Gone is injected by the emulator")
    opted_in(stack, app)
    gone = stack.cluster.inject("watch", "apps/v1/deployments", Fault(count=1, status=410))
    watch, stop = stack.watch(), threading.Event()
    follower = threading.Thread(target=watch.follow, args=(stack.cluster.namespace, stop))
    with caplog.at_level(logging.INFO, logger="workers.platforms.kubernetes.gitops"):
        follower.start()
        try:
            wait_until("the watch to be told 410 Gone", lambda: gone.hits == 1, 30)
            change(stack.cluster, app, V2_IMAGE, "v2")
            wait_until(
                "the watch to submit",
                lambda: stack.store.latest_for(app, stack.cluster.namespace),
                30,
            )
        finally:
            stop.set()
            follower.join(30)
    assert "expired (410 Gone): listing again" in caplog.text
    assert stack.latest(app).spec.version == "v2"


def test_canarist_watch_runs_as_a_process_from_the_settings_and_stops_on_sigterm(
    cluster: Cluster, redis_server: ServiceProcess, policy_dir: Path, tmp_path: Path, app: str
) -> None:
    if cluster.real:
        pytest.skip("writes a kubeconfig for the emulator")
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    url = redis_server.url.rsplit("/", 1)[0] + "/5"  # a database of this test's own
    redis.Redis.from_url(url).flushdb()
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("CANARIST")
    }
    environment.update(
        CANARIST_KUBECONFIG=str(kubeconfig),
        CANARIST_REDIS__URL=url,
        CANARIST_POLICY_DIR=str(policy_dir),
        CANARIST_ALERT_ROUTES='{"oncall": {"type": "alertmanager", "url": "http://127.0.0.1:9"}}',
        CANARIST_WATCH_NAMESPACES=cluster.namespace,
        PYTHONPATH=str(ROOT),  # this checkout's code, whatever the console script was built from
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    cluster.deployment(app)
    opt_in(cluster, app, "demo")
    log = tmp_path / "watch.log"
    store = store_from_url(url)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(CANARIST), "watch"], env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        change(cluster, app, V2_IMAGE, "v2")
        rollout_id = wait_until(
            "canarist watch to submit",
            lambda: store.latest_for(app, cluster.namespace),
            30,
            detail=lambda: log.read_text(errors="replace"),
        )
        state = store.load(rollout_id).state
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, log.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        store.close()
        redis.Redis.from_url(url).flushdb()
        with contextlib.suppress(ApiException):
            cluster.apps.delete_namespaced_deployment(app, cluster.namespace)
    assert (state.spec.version, state.spec.platform) == ("v2", "kubernetes")
    assert "pod template" in log.read_text(errors="replace")  # the submission's log line
