"""The default policy's targets, each checked against the benchmark's results with its number.

Rates pool every traffic level (and, for healthy canaries, every nuisance); the detection and
time-to-detect targets hold per cell (scenario x traffic level at or above 1,000 requests/min),
so a good high-traffic cell cannot hide a poor medium-traffic one. The speed comparison with the
Kayenta-style reference pools the same cells and counts a missed regression as never detected, so
a decider cannot look fast by detecting only the easy runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.report import Result, cell, counted, detected, quantile, select, wilson_upper

BUSY = ("medium", "high")  # traffic levels with at least 1,000 requests/min to the canary
HEADLINE = {"errors x2": 10.0, "latency +10%": 5.0}  # scenario -> median minutes to detect, max


@dataclass(frozen=True)
class Target:
    text: str
    met: bool
    measured: str

    def to_json(self) -> dict[str, Any]:
        return {"target": self.text, "met": self.met, "measured": self.measured}


def check(results: Sequence[Result]) -> list[Target]:
    healthy = select(results, group="healthy")
    tolerable = select(results, group="tolerable")
    found = [_false_aborts(healthy), _tolerable(tolerable)]
    for scenario in HEADLINE:
        found.append(_detection(results, scenario))
    for scenario, limit in HEADLINE.items():
        found.append(_speed(results, scenario, limit))
    found.append(_versus_kayenta(results))
    found.append(_versus_argo(healthy))
    return [target for group in found for target in group]


def _percent(events: int, runs: int) -> str:
    return f"{100 * events / runs:.2f}% ({events}/{runs})" if runs else "no runs"


def _false_aborts(healthy: Sequence[Result]) -> list[Target]:
    c = cell(healthy, "canarist")
    return [
        Target(
            "false aborts on healthy canaries <= 1%", c.rate <= 0.01, _percent(c.events, c.runs)
        ),
        Target(
            "  ... with a Wilson 95% upper bound <= 2%",
            c.upper <= 0.02,
            f"{100 * c.upper:.2f}%",
        ),
    ]


def _tolerable(tolerable: Sequence[Result]) -> list[Target]:
    c = cell(tolerable, "canarist")
    worst = max(
        (
            (cell(select(tolerable, scenario=s, traffic=t), "canarist"), f"{s} @ {t}")
            for s in {r["scenario"] for r in tolerable}
            for t in {r["traffic"] for r in tolerable}
        ),
        key=lambda pair: pair[0].rate,
        default=None,
    )
    shown = _percent(c.events, c.runs)
    if worst is not None:
        shown += f"; worst cell {worst[1]}: {_percent(worst[0].events, worst[0].runs)}"
    return [Target("aborts on regressions inside the tolerance <= 5%", c.rate <= 0.05, shown)]


def _detection(results: Sequence[Result], scenario: str) -> list[Target]:
    parts, met = [], True
    for traffic in BUSY:
        c = cell(select(results, scenario=scenario, traffic=traffic), "canarist")
        met &= c.runs > 0 and c.rate >= 0.95
        parts.append(f"{traffic} {_percent(c.events, c.runs)}")
    return [Target(f">= 95% of '{scenario}' detected at >= 1,000 req/min", met, ", ".join(parts))]


def _speed(results: Sequence[Result], scenario: str, limit: float) -> list[Target]:
    parts, met = [], True
    for traffic in BUSY:
        c = cell(select(results, scenario=scenario, traffic=traffic), "canarist")
        met &= c.median is not None and c.median <= limit
        parts.append(f"{traffic} {c.median if c.median is not None else '-'} min")
    text = f"median time to detect '{scenario}' <= {limit:g} min at >= 1,000 req/min"
    return [Target(text, met, ", ".join(parts))]


def _versus_kayenta(results: Sequence[Result]) -> list[Target]:
    chosen = select(results, group="regression", traffic=BUSY)
    chosen = [r for r in chosen if r["scenario"] in HEADLINE]
    medians = {}
    for decider in ("canarist", "kayenta"):
        times = [
            r[decider]["minutes"] - r["onset_minute"] if detected(r, decider) else math.inf
            for r in chosen
        ]
        medians[decider] = quantile(times, 0.5)
    ours, theirs = medians["canarist"], medians["kayenta"]
    if ours is None or theirs is None:
        return [Target("median time to detect >= 4x shorter than Kayenta-style", False, "no runs")]
    ratio = theirs / ours if ours > 0 else math.inf
    measured = (
        f"{ours:g} vs {theirs:g} min: {ratio:.2f}x (errors x2 + latency +10%, >= 1,000 req/min)"
    )
    return [Target("median time to detect >= 4x shorter than Kayenta-style", ratio >= 4, measured)]


def _versus_argo(healthy: Sequence[Result]) -> list[Target]:
    ours = sum(counted(r, "canarist") for r in healthy)
    theirs = sum(counted(r, "argo") for r in healthy)
    runs = len(healthy)
    if runs == 0:
        return [Target("false-abort rate >= 10x lower than Argo-style", False, "no runs")]
    ratio = math.inf if ours == 0 else theirs / ours
    met = theirs > 0 and ratio >= 10
    measured = f"{_percent(ours, runs)} vs {_percent(theirs, runs)}: {ratio:.1f}x lower"
    # The ratio of two estimates: say how sure it is when Canarist's count is small.
    measured += f" (Canarist's Wilson upper {100 * wilson_upper(ours, runs):.2f}%)"
    return [Target("false-abort rate >= 10x lower than Argo-style", met, measured)]


def render_targets(targets: Sequence[Target]) -> str:
    lines = ["TARGETS for the default policy"]
    for target in targets:
        lines.append(
            f"  [{'met' if target.met else 'NOT met':^7}] {target.text}: {target.measured}"
        )
    return "\n".join(lines)
