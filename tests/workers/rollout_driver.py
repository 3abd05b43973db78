"""A fake-clock stand-in for the Celery task: drives one rollout through ``engine.step``.

``Driver.wake()`` does what ``workers.tasks.advance`` does on a real wake-up, without I/O: jump the
clock to ``next_due_at``, then report readiness if a platform change is awaited, else gather the
analysis ``state.analysis_due`` asks for from a scripted verdict, else tick.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from analyzer.policy import Policy, load_policy, load_policy_text
from analyzer.verdict import Judgement, MetricVerdict, Outcome, Reason, Verdict
from workers.actions import (
    Action,
    AnalysisResult,
    CommandKind,
    ManualCommand,
    Notify,
    Observation,
    PlatformAction,
    PlatformReady,
    RecordEvent,
    Release,
    Schedule,
    Tick,
)
from workers.engine import step
from workers.spec import RolloutSpec
from workers.state import AnalysisRequest, Phase, RolloutState

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SPEC = RolloutSpec(
    version="v2",
    image="registry.example/checkout:v2",
    platform="kubernetes",
    baseline_selector='app="checkout",version="v1"',
    canary_selector='app="checkout",version="v2"',
    args=(("route", "/api/.*"),),
)
T = TypeVar("T")
PASS, FAIL, UNDECIDED = Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE

METRICS = """
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }} }[{{ interval }}]))
    total: sum(increase(t{ {{ selector }} }[{{ interval }}]))
    tolerance: 0.25
    critical: true
  - name: cpu
    kind: series
    query: sum(rate(c{ {{ selector }} }[{{ interval }}]))
    tolerance: 0.3
    dry_run: true
"""


def shipped(name: str) -> Policy:
    return load_policy(POLICIES / f"{name}.yaml")


def small(strategy: str, analysis: str = "{interval: 1m}") -> Policy:
    """A two-metric policy (one dry run) around a strategy given as YAML flow text."""
    return load_policy_text(f"name: small\nanalysis: {analysis}\n{METRICS}\nstrategy: {strategy}")


def verdict(policy: Policy, outcome: Outcome, code: Reason = Reason.EVIDENCE) -> Verdict:
    """A verdict in which every metric says ``outcome`` for reason ``code``."""
    metrics = [
        MetricVerdict(
            name=metric.name,
            kind=metric.kind,
            judge=metric.judge.type,
            dry_run=metric.dry_run,
            judgement=Judgement(
                outcome=outcome, reason=f"{metric.name}: {outcome}", reason_code=code
            ),
        )
        for metric in policy.metrics
    ]
    return Verdict(outcome=outcome, reason=f"scripted {outcome.value}", metrics=metrics)


Script = Callable[[AnalysisRequest], Verdict]


def healthy(policy: Policy) -> Script:
    """A sequential judge on a good canary: undecided until the step's last look, then PASS."""
    return lambda request: verdict(policy, PASS if request.final else UNDECIDED)


def always(policy: Policy, outcome: Outcome, code: Reason = Reason.EVIDENCE) -> Script:
    return lambda request: verdict(policy, outcome, code)


class Driver:
    def __init__(
        self,
        policy: Policy,
        rollout_id: str = "r1",
        now: float = 1_000_000.0,
        supersedes: str | None = None,
    ) -> None:
        self.policy, self.now = policy, now
        self.state = RolloutState.new(
            rollout_id,
            app="checkout",
            namespace="shop",
            policy=policy.name,
            spec=SPEC,
            now=now,
            supersedes=supersedes,
        )
        self.history: list[tuple[RolloutState, Observation, RolloutState, list[Action]]] = []

    def send(self, observation: Observation) -> list[Action]:
        before = self.state
        self.state, actions = step(before, self.policy, observation, self.now)
        assert RolloutState.from_record(self.state.to_record()) == self.state
        self.history.append((before, observation, self.state, actions))
        return actions

    def tick(self) -> list[Action]:
        return self.send(Tick())

    def ready(self) -> list[Action]:
        assert self.state.awaiting is not None, "nothing is awaited"
        return self.send(PlatformReady(self.state.awaiting))

    def command(self, kind: CommandKind, actor: str = "alice", full: bool = False) -> list[Action]:
        return self.send(ManualCommand(kind, actor, full=full))

    def at(self, when: float) -> Driver:
        self.now = max(self.now, when)
        return self

    def wake(self, script: Script, platform_ready: bool = True) -> list[Action]:
        """One wake-up of the task at the time the engine asked for."""
        if self.state.next_due_at is not None:
            self.at(self.state.next_due_at)
        if self.state.awaiting is not None:
            return self.ready() if platform_ready else self.tick()
        request = self.state.analysis_due(self.now)
        if request is not None:
            return self.send(AnalysisResult(request, script(request)))
        return self.tick()

    def run(
        self,
        script: Script,
        until: Callable[[RolloutState], bool] | None = None,
        wakes: int = 500,
    ) -> list[Action]:
        """Wake until ``until`` holds (default: terminal or paused); every action emitted."""
        done = until or (lambda state: state.phase.terminal or state.phase is Phase.PAUSED)
        emitted: list[Action] = []
        for _ in range(wakes):
            if done(self.state):
                return emitted
            if self.state.next_due_at is None and self.state.phase is not Phase.PENDING:
                raise AssertionError(f"stuck in {self.state.phase} with nothing scheduled")
            emitted += self.wake(script)
        raise AssertionError(f"not done after {wakes} wake-ups: {self.state}")

    @property
    def emitted(self) -> list[Action]:
        return [action for *_, actions in self.history for action in actions]


def platform(actions: list[Action]) -> list[PlatformAction]:
    return [a for a in actions if not isinstance(a, Notify | RecordEvent | Schedule | Release)]


def notices(actions: list[Action], kind: str | None = None) -> list[Notify]:
    return [a for a in actions if isinstance(a, Notify) and kind in (None, a.kind)]


def events(actions: list[Action], kind: str | None = None) -> list[RecordEvent]:
    return [a for a in actions if isinstance(a, RecordEvent) and kind in (None, a.kind)]


def of_type(actions: list[Action], cls: type[T]) -> list[T]:
    return [a for a in actions if isinstance(a, cls)]
