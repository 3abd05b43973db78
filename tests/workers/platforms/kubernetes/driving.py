"""Driving the Kubernetes platform the way the task does, with the cluster settling in between.

``drive`` applies actions, lets the Deployment controller act (``Cluster.settle``) and asks for
readiness, re-asserting the actions while the answer is NotYet: what ``workers.tasks`` does at
every wake-up. ``EngineRun`` goes one level up: the real ``workers.engine.step`` with a policy and
scripted analysis verdicts, applying every platform action it emits (rollout_driver.py's Driver,
with a real platform in place of PlatformReady).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from analyzer.policy import Policy, load_policy_text
from analyzer.policy.traffic import StickyKey
from tests.workers.platforms.kubernetes.kube_stack import PAUSE, Cluster
from tests.workers.rollout_driver import METRICS, Script
from workers.actions import (
    AnalysisResult,
    Observation,
    PlatformAction,
    PlatformFailed,
    PlatformReady,
    Tick,
)
from workers.engine import platform_wants, step
from workers.platforms.base import Failed, NotYet, Readiness, Ready
from workers.platforms.kubernetes import KubernetesPlatform
from workers.spec import RolloutSpec, RolloutTraffic
from workers.state import RolloutState

NEW_IMAGE = PAUSE.replace(":3.9", ":3.10")


def rollout(
    cluster: Cluster,
    app: str,
    strategy: str = "canary",
    router: str = "gateway_api",
    *,
    image: str = NEW_IMAGE,
    images: dict[str, str] | None = None,
    version: str = "v2",
    rollout_id: str | None = None,
    sticky: StickyKey | None = None,
) -> RolloutState:
    spec = RolloutSpec(
        version=version,
        image=image,
        platform="kubernetes",
        baseline_selector=f'app="{app}",version="v1"',
        canary_selector=f'app="{app}",version="{version}"',
        strategy=strategy,
        images=tuple(sorted((images or {}).items())),
        traffic=RolloutTraffic(router=router, sticky=sticky).resolved(app),
    )
    return RolloutState.new(
        rollout_id or f"{app}-0123456789ab",
        app=app,
        namespace=cluster.namespace,
        policy="p",
        spec=spec,
        now=1_000_000.0,
    )


def drive(
    platform: KubernetesPlatform,
    cluster: Cluster,
    state: RolloutState,
    *actions: PlatformAction,
    token: str,
    rounds: int = 8,
) -> Readiness:
    """Apply ``actions`` for ``token``, then settle / ask / re-assert until not NotYet."""
    state = replace(state, awaiting=token)
    for action in actions:
        platform.apply(state, action)
    answer: Readiness = NotYet()
    for _ in range(rounds if not cluster.real else rounds * 15):
        cluster.settle()
        answer = platform.readiness(state, actions)
        if not isinstance(answer, NotYet):
            return answer
        if cluster.real:
            time.sleep(1.0)  # pods and their statuses take real time
        for action in actions:  # the engine re-asserts what it awaits
            platform.apply(state, action)
    return answer


def policy(strategy: str, router: str = "gateway_api") -> Policy:
    return load_policy_text(
        f"name: small\nanalysis: {{interval: 1m}}\n{METRICS}\nstrategy: {strategy}\n"
        f"traffic: {{router: {router}}}\n"
    )


class EngineRun:
    """One rollout walked by the real engine against the platform (see the module docstring)."""

    def __init__(
        self, platform: KubernetesPlatform, cluster: Cluster, policy: Policy, state: RolloutState
    ) -> None:
        self.platform, self.cluster, self.policy = platform, cluster, policy
        self.state, self.now = state, state.created_at
        self.applied: list[PlatformAction] = []

    def wake(self, script: Script) -> None:
        state = self.state
        self.now = max(self.now, state.next_due_at or self.now)
        observation: Observation = Tick()
        if state.awaiting is not None:
            self.cluster.settle()
            answer = self.platform.readiness(state, platform_wants(state, self.policy))
            if isinstance(answer, Ready):
                observation = PlatformReady(state.awaiting)
            elif isinstance(answer, Failed):
                observation = PlatformFailed(answer.reason, state.awaiting)
        elif (request := state.analysis_due(self.now)) is not None:
            observation = AnalysisResult(request, script(request))
        self.state, actions = step(state, self.policy, observation, self.now)
        for action in actions:
            if isinstance(action, PlatformAction):
                self.platform.apply(self.state, action)
                self.applied.append(action)

    def run(self, script: Script, until: Callable[[RolloutState], bool], wakes: int = 200) -> None:
        for _ in range(wakes):
            if until(self.state):
                return
            self.wake(script)
        raise AssertionError(f"not there after {wakes} wake-ups: {self.state}")
