"""The benchmark's scenarios: healthy canaries, regressions inside the tolerance, and regressions.

Each scenario runs at every traffic level of ``simulator.TRAFFIC``. Healthy scenarios isolate one
nuisance each, then mix them; every regression scenario carries the realistic mix, because real
regressions do not arrive on quiet clusters. The tolerable regressions are the default policy's
allowances: errors x1.25 is at its 25% tolerance, latency +3% inside its 5%.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from benchmarks.simulator import Nuisances, Regression

Group = Literal["healthy", "tolerable", "regression"]

REALISTIC = Nuisances(drift=1.0, warmup=1.0, slow_pod=0.25, scrape_gaps=0.5)
"""Shared drift and a warm-up in every run, a slow pod in a quarter, scrape gaps in half."""


@dataclass(frozen=True)
class Scenario:
    name: str
    group: Group
    nuisances: Nuisances
    regression: Regression = field(default_factory=Regression)

    @property
    def onset_minute(self) -> int:
        return self.regression.onset_minute


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("pod spread only", "healthy", Nuisances()),
    Scenario("shared drift + bursts", "healthy", Nuisances(drift=1.0)),
    Scenario("canary warm-up", "healthy", Nuisances(warmup=1.0)),
    Scenario("slow/noisy pod", "healthy", Nuisances(slow_pod=1.0)),
    Scenario("scrape gaps", "healthy", Nuisances(scrape_gaps=1.0)),
    Scenario("realistic mix", "healthy", REALISTIC),
    Scenario("errors x1.25", "tolerable", REALISTIC, Regression("errors", 1.25)),
    Scenario("latency +3%", "tolerable", REALISTIC, Regression("latency", 0.03)),
    Scenario("errors x1.5", "regression", REALISTIC, Regression("errors", 1.5)),
    Scenario("errors x2", "regression", REALISTIC, Regression("errors", 2.0)),
    Scenario("errors x4", "regression", REALISTIC, Regression("errors", 4.0)),
    Scenario("latency +10%", "regression", REALISTIC, Regression("latency", 0.10)),
    Scenario("latency +25%", "regression", REALISTIC, Regression("latency", 0.25)),
    Scenario("tail only: p99 x1.5", "regression", REALISTIC, Regression("tail", 1.5)),
    Scenario(
        "tail only: slowest 10% x3",
        "regression",
        REALISTIC,
        Regression("tail", 3.0, slowest=0.10),
    ),
    Scenario("memory +1%/min", "regression", REALISTIC, Regression("memory", 0.01)),
    Scenario("late errors x2 @20m", "regression", REALISTIC, Regression("errors", 2.0, 20)),
    Scenario("late latency +10% @20m", "regression", REALISTIC, Regression("latency", 0.10, 20)),
)


@dataclass(frozen=True)
class RunCounts:
    """Runs per scenario and traffic level, by group."""

    healthy: int
    tolerable: int
    regression: int

    def of(self, group: Group) -> int:
        count: int = getattr(self, group)
        return count


FULL = RunCounts(healthy=200, tolerable=250, regression=150)
QUICK = RunCounts(healthy=2, tolerable=2, regression=2)


def by_name(name: str) -> Scenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario {name!r}; known: {', '.join(s.name for s in SCENARIOS)}")
