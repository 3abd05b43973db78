"""The stages every strategy compiles to, so the engine walks one flat plan whatever the type.

A strategy's ``plan()`` turns its policy section into a tuple of stages, once per step call (it is
cheap and pure). Each stage says three things and nothing else:

- what to ask of the platform when it begins (``enter``) and when it ends (``leave``);
- what it does to the new version's exposure (``expose``): weight, whether users reach it, and
  whether the active service already points at it;
- how it ends (``gate``): when the platform is READY, after a TIMER, when a PERSON promotes, or on
  an ANALYSIS that passes.

The engine holds no per-strategy knowledge: a new strategy is a new planner and perhaps a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from analyzer.errors import UnknownNameError
from analyzer.policy.durations import format_duration
from analyzer.policy.load import LoadSpec
from workers.actions import (
    EnsureCanary,
    Match,
    PlatformAction,
    ScaleDownOld,
    ScaleNew,
    SetTraffic,
    SwitchActive,
)
from workers.errors import WorkerError


class UnknownStrategyError(WorkerError, UnknownNameError):
    """A policy names a strategy type no planner is registered for."""


class Gate(StrEnum):
    READY = "ready"  # done when the platform reports what ``enter`` asked for
    TIMER = "timer"  # done ``seconds`` after it began
    PERSON = "person"  # done when a person promotes or resumes
    ANALYSIS = "analysis"  # done on a PASS look; the last look is due ``seconds`` in


@dataclass(frozen=True)
class Exposure:
    """How far the new version is out after a stage."""

    weight: int = 0  # percent of traffic (or of replicas, for a rolling batch)
    serving: bool = False  # real users reach it, so background analysis watches it
    active_is_new: bool = False  # blue-green: the active service points at it


@dataclass(frozen=True)
class Stage:
    """Base of every stage: a stage that asks nothing, changes nothing and ends when ready."""

    @property
    def gate(self) -> Gate:
        return Gate.READY

    @property
    def seconds(self) -> float | None:
        return None

    @property
    def label(self) -> str:
        raise NotImplementedError

    def enter(self) -> tuple[PlatformAction, ...]:
        return ()

    def leave(self) -> tuple[PlatformAction, ...]:
        return ()

    def expose(self, before: Exposure) -> Exposure:
        return before


Plan = tuple[Stage, ...]


@dataclass(frozen=True)
class Shift(Stage):
    """Canary and targeted: shift ``weight`` percent of everyone, plus every request in ``match``,
    to the new version."""

    weight: int
    match: tuple[Match, ...] = ()

    @property
    def label(self) -> str:
        if not self.match:
            return f"set weight {self.weight}%"
        if self.weight == 0:
            return f"route {_audience(self.match)} to the new version"
        return f"set weight {self.weight}% plus {_audience(self.match)}"

    def enter(self) -> tuple[PlatformAction, ...]:
        return (SetTraffic(self.weight, self.match),)

    def expose(self, before: Exposure) -> Exposure:
        return Exposure(self.weight, self.weight > 0 or bool(self.match), before.active_is_new)


@dataclass(frozen=True)
class Scale(Stage):
    """Rolling: this many of the fleet's replicas run the new version (cumulative)."""

    percent: int | None = None
    replicas: int | None = None

    @property
    def label(self) -> str:
        size = f"{self.percent}%" if self.percent is not None else _replicas(self.replicas)
        return f"scale the new version to {size}"

    def enter(self) -> tuple[PlatformAction, ...]:
        return (ScaleNew(self.percent, self.replicas),)

    def expose(self, before: Exposure) -> Exposure:
        weight = self.percent if self.percent is not None else before.weight
        return Exposure(max(weight, before.weight), True, before.active_is_new)


@dataclass(frozen=True)
class Preview(Stage):
    """Blue-green: the new version runs beside the active one and gets no user traffic."""

    replicas: int | None = None

    @property
    def label(self) -> str:
        size = _replicas(self.replicas) if self.replicas else "full size"
        return f"preview the new version at {size}, without user traffic"

    def enter(self) -> tuple[PlatformAction, ...]:
        if self.replicas is None:
            return (ScaleNew(percent=100),)
        return (ScaleNew(replicas=self.replicas),)


@dataclass(frozen=True)
class Switch(Stage):
    """Blue-green: scale the preview to full size, then point the active service at it."""

    @property
    def label(self) -> str:
        return "switch the active service to the new version"

    def enter(self) -> tuple[PlatformAction, ...]:
        return (ScaleNew(percent=100), SwitchActive())

    def expose(self, before: Exposure) -> Exposure:
        return Exposure(100, True, True)


@dataclass(frozen=True)
class Analyze(Stage):
    """Hold the exposure and analyse; PASS moves on, the look at ``duration`` is the last.

    ``load``: the policy asks for synthetic traffic to the new version meanwhile (sent by
    ``canarist load``, workers/load/, which reads it from the plan; the engine ignores it)."""

    duration: float
    load: LoadSpec | None = None

    @property
    def gate(self) -> Gate:
        return Gate.ANALYSIS

    @property
    def seconds(self) -> float | None:
        return self.duration

    @property
    def label(self) -> str:
        if self.load is None:
            return f"analyze {_seconds(self.duration)}"
        return f"analyze {_seconds(self.duration)} with synthetic load at {self.load.rate:g}/s"


@dataclass(frozen=True)
class Pause(Stage):
    """Hold for ``duration`` seconds, or until a person promotes when it is None."""

    duration: float | None = None

    @property
    def gate(self) -> Gate:
        return Gate.PERSON if self.duration is None else Gate.TIMER

    @property
    def seconds(self) -> float | None:
        return self.duration

    @property
    def label(self) -> str:
        if self.duration is None:
            return "pause until a person promotes"
        return f"pause {_seconds(self.duration)}"


@dataclass(frozen=True)
class RetireOld(Stage):
    """Blue-green: keep the old side ``delay`` seconds (an abort switches back), then drop it."""

    delay: float

    @property
    def gate(self) -> Gate:
        return Gate.TIMER

    @property
    def seconds(self) -> float | None:
        return self.delay

    @property
    def label(self) -> str:
        return f"keep the old version {_seconds(self.delay)}, then scale it down"

    def leave(self) -> tuple[PlatformAction, ...]:
        return (ScaleDownOld(),)


def exposure_after(plan: Plan, index: int) -> Exposure:
    """The exposure once stages ``0..index`` have begun (nothing for a negative index)."""
    exposure = Exposure()
    for stage in plan[: index + 1]:
        exposure = stage.expose(exposure)
    return exposure


def required_after(plan: Plan, index: int) -> tuple[PlatformAction, ...]:
    """Everything stages ``0..index`` ask of the platform, as one declarative desired state.

    The new version exists (``EnsureCanary``), then the latest ask of each kind: every stage's
    ``enter``, and the ``leave`` of each stage already left. The asks are declarative ("weight
    25", "4 replicas"), so the last of a kind replaces the earlier ones, and the order in which
    each kind first appears is the order in which they are applied (a switch before the old side
    is scaled down). This is what a platform is compared with, whatever a crash interrupted.
    """
    latest: dict[str, PlatformAction] = {"EnsureCanary": EnsureCanary()}
    for position, stage in enumerate(plan[: index + 1]):
        for ask in stage.enter() + (stage.leave() if position < index else ()):
            latest[type(ask).__name__] = ask
    return tuple(latest.values())


def baseline_shift(plan: Plan, index: int, begin_after: float) -> float:
    """How far back the baseline is read at stage ``index``, in seconds (0: at the same time).

    Once blue-green's switch has sent everyone to the new version, the old one serves nobody,
    and comparing with it at the same time compares with silence. So from the switch on, the
    baseline is the old version just before the switch, under the same full traffic: the
    window starts ``begin_after`` after the switch, so a shift of ``begin_after + L`` lays the
    last ``L`` seconds before the switch under the first ``L`` after the window starts, where
    ``L`` is the post-switch stage's duration (the post-promotion analysis, else the
    scale-down delay). The shift is one number for the whole window, so every look of it
    compares the same periods.
    """
    if index < 0 or not exposure_after(plan, index).active_is_new:
        return 0.0
    switched = next(i for i in range(index + 1) if exposure_after(plan, i).active_is_new)
    timed = (stage.seconds for stage in plan[switched + 1 :] if stage.seconds is not None)
    return begin_after + next(timed, 0.0)


def _seconds(value: float) -> str:
    return format_duration(timedelta(seconds=value))


def _replicas(count: int | None) -> str:
    return f"{count} replica{'' if count == 1 else 's'}"


def _audience(match: tuple[Match, ...]) -> str:
    rules = [f"{rule.kind} {rule.name}{'~' if rule.regex else '='}{rule.value}" for rule in match]
    return "requests with " + " or ".join(rules)
