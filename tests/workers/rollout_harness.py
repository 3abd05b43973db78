"""Rollouts driven through the real doors and tasks by workers that can be killed anywhere.

A ``Harness`` is one service over an in-memory store and a fake clock: the HTTP API (FastAPI's
TestClient over the same ``Intake`` the API process builds) for submissions and commands, and
``worker()`` for the Celery task's code (``workers.tasks.advance`` and ``reconcile``) over a
new platform instance each time, as a restarted worker process builds one. ``run`` plays
Celery: it runs the queued ``advance`` tasks after their countdowns until a condition holds.

``run(kill_at=n)`` kills the worker as it is about to make its n-th platform call of that run
(0: after saving a step, before its first action): ``Killed`` unwinds the task like SIGKILL
would, so nothing after that point runs (no further action, no requeue). The queued message
dies with it; ``recover()`` then does what beat's reconciler does once the rollout is
overdue. A test kills at every n of a run to put a crash between every pair of actions.

Analysis answers from ``FakeSource`` (healthy by default): these tests are about where the
platform ends, not about the statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from analyzer.policy import load_policy
from canarist.api import create_app
from canarist.settings import ApiToken, Settings, hash_token
from tests.workers.conftest import FakeClock, FakeSource, Queued
from workers.actions import PlatformAction, Released
from workers.delivery import Delivery
from workers.hooks import HookCaller
from workers.intake import Intake
from workers.notify.memory import MemoryNotifier
from workers.platforms import Platform, Readiness
from workers.settings import HookRoute
from workers.state import Phase, RolloutState
from workers.store import MemoryStateStore, StateStore
from workers.strategies import plan_for
from workers.tasks import Runtime, advance, reconcile

TOKEN = "cnr_harness-operator"
RECONCILE_GRACE = 5.0


class Killed(BaseException):
    """The worker process died here: nothing after this point of the task runs."""


@dataclass
class Killable:
    """A platform whose worker dies before its ``kill_at``-th apply (counted from 0)."""

    inner: Platform
    kill_at: int | None
    calls: int = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def apply(self, rollout: RolloutState, action: PlatformAction) -> None:
        if self.calls == self.kill_at:
            self.calls += 1
            raise Killed(f"killed before applying {action}")
        self.calls += 1
        self.inner.apply(rollout, action)

    def readiness(self, rollout: RolloutState, wants: Sequence[PlatformAction]) -> Readiness:
        return self.inner.readiness(rollout, wants)


@dataclass
class Harness:
    """One service: the API, the store, the queue and the workers; see the module docstring."""

    policy_dir: Path
    platform: Callable[[], Platform]  # a new instance, as a (re)started worker builds it
    settle: Callable[[], None] = lambda: None  # let the platform's controllers act
    clock: FakeClock = field(default_factory=lambda: FakeClock(round(time.time(), 3)))
    source: FakeSource = field(default_factory=FakeSource)
    queued: Queued = field(default_factory=Queued)
    oncall: MemoryNotifier = field(default_factory=MemoryNotifier)
    applies: int = 0  # platform calls made by workers so far
    poll: float = 0.0  # real seconds between polls of a change in flight (real platforms)
    hook_routes: dict[str, HookRoute] = field(default_factory=dict)  # the policies' HTTP hooks
    hooks: Callable[[dict[str, HookRoute]], HookCaller] = HookCaller
    store_for: Callable[[FakeClock], StateStore] = MemoryStateStore  # or the real Redis's

    def __post_init__(self) -> None:
        self.store = self.store_for(self.clock)
        self.intake = Intake(
            self.store,
            self.policy_dir,
            self.clock,
            self.queued.enqueue,
            alert_routes=["oncall"],
            hook_routes=self.hook_routes.keys(),
            on_outbox=self.queued.wake,
        )
        token = ApiToken(
            name="operator", sha256=hash_token(TOKEN), namespaces=["*"], roles=["submit", "operate"]
        )
        settings = Settings(api_tokens=[token], policy_dir=self.policy_dir)
        self.api = TestClient(create_app(settings, self.intake))

    # -- the doors -------------------------------------------------------------------------------
    def submit(self, **job: Any) -> str:
        response = self.api.post("/v1/rollouts", json=job, headers=self._auth)
        assert response.status_code == 202, response.text
        rollout_id: str = response.json()["id"]
        return rollout_id

    def command(self, rollout_id: str, kind: str, **body: Any) -> int:
        """A person's command through the API; the HTTP status (202, or 409 when refused)."""
        url = f"/v1/rollouts/{rollout_id}/{kind}"
        response = self.api.post(url, json=body or None, headers=self._auth)
        assert response.status_code in (202, 409), response.text
        return response.status_code

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    # -- the workers -----------------------------------------------------------------------------
    def worker(self, kill_at: int | None = None) -> tuple[Runtime, Killable]:
        platform = Killable(self.platform(), kill_at)
        delivery = Delivery(
            self.store,
            {"oncall": self.oncall},
            self.clock,
            lambda successor, predecessor: self.intake.tell(successor, Released(predecessor)),
            record=self.intake.record,
        )
        runtime = Runtime(
            store=self.store,
            intake=self.intake,
            source=self.source,
            platforms=lambda name: platform,
            delivery=delivery,
            clock=self.clock,
            requeue=self.queued.requeue,
            wake_outbox=self.queued.wake,
            lease_seconds=30.0,
            max_countdown=15.0,
            reconcile_grace=RECONCILE_GRACE,
            worker_id="harness",
            hooks=self.hooks(self.hook_routes),
        )
        return runtime, platform

    def state(self, rollout_id: str) -> RolloutState:
        return self.store.load(rollout_id).state

    def run(
        self,
        rollout_id: str,
        until: Callable[[RolloutState], bool],
        kill_at: int | None = None,
        timeout: float = 90.0,
    ) -> bool:
        """Run queued tasks until ``until`` holds (True) or the worker is killed (False)."""
        runtime, platform = self.worker(kill_at)
        deadline = time.monotonic() + timeout
        try:
            while not until(self.state(rollout_id)):
                assert time.monotonic() < deadline, f"timed out: {self.state(rollout_id)}"
                if not self.queued.advance:
                    raise AssertionError(f"nothing queued: {self.state(rollout_id)}")
                queued_id, revision, countdown = self.queued.advance.pop(0)
                self.clock.advance(countdown)
                self.settle()
                advance(runtime, queued_id, revision)
                if self.poll and self.state(rollout_id).awaiting is not None:
                    time.sleep(self.poll)  # real processes and controllers take real time
        except Killed:
            self.queued.advance.clear()  # the dead worker's messages and countdowns are gone
            return False
        finally:
            self.applies += platform.calls
        return True

    def recover(self) -> None:
        """What beat's reconciler does for a rollout whose worker died: once it is overdue,
        enqueue it again."""
        self.clock.advance(RECONCILE_GRACE + 15.0)
        runtime, _ = self.worker()
        reconcile(runtime)

    def finish(self, rollout_id: str, timeout: float = 120.0) -> RolloutState:
        """Run until the rollout is done (terminal, nothing awaited) or waits for a person."""
        self.run(rollout_id, settled, timeout=timeout)
        return self.state(rollout_id)


def settled(state: RolloutState) -> bool:
    """Done with the platform: terminal with nothing awaited, or paused for a person."""
    done = state.phase.terminal or state.phase is Phase.PAUSED
    return done and state.awaiting is None


POLICIES = {
    "canary": """
strategy:
  type: canary
  steps:
    - set_weight: 20
    - analyze: {duration: 10s}
    - set_weight: 60
    - analyze: {duration: 10s}
    - set_weight: 100
traffic: {router: gateway_api}
""",
    "targeted": """
strategy:
  type: targeted
  match:
    - header: {name: x-tester, value: "yes"}
  analyze: {duration: 10s}
  steps:
    - set_weight: 50
    - analyze: {duration: 10s}
    - set_weight: 100
traffic: {router: gateway_api}
""",
    "blue_green": """
strategy:
  type: blue_green
  analyze: {duration: 10s}
  auto_promote: true
  post_promotion_analyze: {duration: 10s}
  scale_down_delay: 10s
""",
    "rolling": """
strategy:
  type: rolling
  batches:
    - replicas: 1
      analyze: 10s
    - percent: 100
""",
}
ANALYSIS = """
analysis: {interval: 5s, begin_after: 0s, min_samples: 2, alpha: 0.001, inconclusive_limit: 3}
metrics:
  - name: error-ratio
    kind: counts
    errors: sum(increase(http_requests_total{ {{ selector }}, code=~"5.." }[{{ interval }}]))
    total: sum(increase(http_requests_total{ {{ selector }} }[{{ interval }}]))
    tolerance: 0.25
    critical: true
"""
STRATEGIES = tuple(POLICIES)
FRESH_CANARY = """
strategy:
  type: canary
  steps:
    - set_weight: 20
    - analyze: {duration: 10s}
    - set_weight: 50
    - analyze: {duration: 10s}
    - set_weight: 100
"""
FRESH_POLICIES = {
    # A fresh baseline (analysis.baseline fresh) is compared at weights up to 50, on a router
    # that splits three ways or on replica counts.
    "canary-fresh": f"{FRESH_CANARY}traffic: {{router: gateway_api}}\n",
    "canary-fresh-replicas": f"{FRESH_CANARY}traffic: {{router: replicas}}\n",
}


def write_policies(directory: Path) -> Path:
    """One small policy per strategy, named like it (``blue_green`` as ``blue-green``), and the
    fresh-baseline canaries of ``FRESH_POLICIES``."""
    directory.mkdir(parents=True, exist_ok=True)
    for strategy, text in POLICIES.items():
        name = strategy.replace("_", "-")
        (directory / f"{name}.yaml").write_text(f"name: {name}\n{ANALYSIS}{text}")
    fresh = ANALYSIS.replace("inconclusive_limit: 3}", "inconclusive_limit: 3, baseline: fresh}")
    assert fresh != ANALYSIS
    for name, text in FRESH_POLICIES.items():
        (directory / f"{name}.yaml").write_text(f"name: {name}\n{fresh}{text}")
    return directory


def policy_name(strategy: str) -> str:
    return strategy.replace("_", "-")


def stage_count(policies: Path, strategy: str) -> int:
    """How many stages the plan of ``strategy``'s policy has."""
    return len(plan_for(load_policy(policies / f"{policy_name(strategy)}.yaml").strategy))


def undisturbed_applies(harness: Harness, submit: Callable[[Harness], str]) -> int:
    """How many platform calls a run without any crash makes: kill at each of them."""
    harness.finish(submit(harness))
    return harness.applies


def give(harness: Harness, rollout_id: str, command: str, killed: bool) -> RolloutState:
    """Give ``command`` through the API, kill the worker that takes it up before it acts (if
    ``killed``), and run to the end; a pause is resumed once it holds. A command the phase
    refuses (a pause or a stage skip during the promotion) answers 409."""
    kind, _, variant = command.partition("-")
    promoting = harness.state(rollout_id).phase is Phase.PROMOTING
    status = harness.command(rollout_id, kind, **({"full": True} if variant == "full" else {}))
    refused = promoting and kind in ("pause", "promote")
    assert status == (409 if refused else 202) or (kind == "promote" and not variant), status
    if killed and not harness.run(rollout_id, settled, kill_at=0):
        harness.recover()
    state = harness.finish(rollout_id)
    if kind == "pause" and not refused:
        assert state.phase is Phase.PAUSED, state
        assert harness.command(rollout_id, "resume") == 202
        state = harness.finish(rollout_id)
    if variant == "retry":  # the next attempt of an aborted rollout runs from the start
        assert state.phase is Phase.ABORTED, state
        assert harness.command(rollout_id, "retry") == 202
        state = harness.finish(rollout_id)
    return state


def expected_end(command: str) -> Phase:
    """Where a healthy rollout ends after ``command``."""
    return Phase.ABORTED if command == "abort" else Phase.PROMOTED


Start = Callable[[], tuple[Harness, str, str, str]]
"""A new run on a real platform: the harness, the rollout's id, the stable and the new version."""
Serving = Callable[[str, str], None]
"""Assert that only ``version`` serves, on the platform under test (``why`` names the run)."""


def killed_before_every_call(start: Start, serves_only: Serving) -> None:
    """An undisturbed run, then one run killed before each platform call that run made; every
    one ends promoted with only its new version serving."""
    runner, rollout_id, _, new = start()
    assert runner.finish(rollout_id).phase is Phase.PROMOTED
    serves_only(new, "undisturbed")
    for kill_at in range(runner.applies + 1):
        runner, rollout_id, _, new = start()
        if not runner.run(rollout_id, settled, kill_at=kill_at):
            runner.recover()
        state = runner.finish(rollout_id)
        assert state.phase is Phase.PROMOTED, f"killed at {kill_at}: {state}"
        serves_only(new, f"killed at {kill_at}")


def command_at_every_stage(start: Start, stages: int, command: str, serves_only: Serving) -> None:
    """``command`` through the API once the change of each stage took effect (or during the
    promotion, for the last), with the worker that takes it up killed before it acts."""
    for stage in range(stages):
        runner, rollout_id, old, new = start()
        runner.run(
            rollout_id,
            lambda s, stage=stage: (
                s.phase is Phase.PROMOTING
                or (s.phase is Phase.PROGRESSING and s.stage_index >= stage and s.awaiting is None)
            ),
        )
        state = give(runner, rollout_id, command, killed=True)
        assert state.phase is expected_end(command), f"stage {stage}: {state}"
        serves_only(old if command == "abort" else new, f"{command} at stage {stage}")


def in_the_first_analysis(start: Start, command: str, serves_only: Serving) -> None:
    """``command`` (one that ends promoted: pause-resume, abort-retry) through the API once
    the first analysis window is open, its worker killed before it acts."""
    runner, rollout_id, _, new = start()
    runner.run(rollout_id, lambda s: s.phase is Phase.PROGRESSING and s.window_start is not None)
    assert give(runner, rollout_id, command, killed=True).phase is Phase.PROMOTED
    serves_only(new, command)
