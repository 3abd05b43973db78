"""The default policy's targets, each checked against the benchmark's results with its number.

Rates pool every traffic level (and, for healthy canaries, every nuisance, slow-pod runs
included); the detection and time-to-detect targets hold per row (scenario x traffic level), so a
good high-traffic row cannot hide a poor medium-traffic one. "Busy" rows are those with at least
1,000 canary requests a minute. Every median time to detect counts a missed regression as never
detected (an infinite time), so a decider cannot look fast by detecting only the easy runs: a
row that detects fewer than half its runs has an infinite median.

The memory targets hold at every traffic level: the memory gauge does not depend on traffic. The
former pooled "median time to detect >= 4x shorter than Kayenta-style" is replaced by a per-row
"at most half of Kayenta-style's".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.report import Result, cell, counted, detected, quantile, select, wilson_upper
from benchmarks.scenarios import SCENARIOS, Scenario
from benchmarks.simulator import TRAFFIC, Regression

BUSY = ("medium", "high")  # traffic levels with at least 1,000 requests/min to the canary
LOW = "low"  # 100 requests/min
HEADLINE = {"errors x2": 10.0, "latency +10%": 5.0}  # scenario -> median minutes to detect, max
MEMORY_LEAK, MEMORY_MINUTES = "memory +1%/min", 15.0
DETECTED_SHARE = 0.95
LOW_TRAFFIC_MULTIPLIER = 1.3  # regressions at least this large must not be promoted at 100/min
_SHOWN_ROWS = 4  # missed rows named in a target's measurement


@dataclass(frozen=True)
class Target:
    text: str
    met: bool
    measured: str

    def to_json(self) -> dict[str, Any]:
        return {"target": self.text, "met": self.met, "measured": self.measured}


def check(results: Sequence[Result], us: str = "canarist") -> list[Target]:
    """The targets for decider ``us``: Canarist's, or the oracle's to see which of them the
    data allows at all."""
    healthy = select(results, group="healthy")
    tolerable = select(results, group="tolerable")
    return [
        *_false_aborts(healthy, us),
        _tolerable(tolerable, us),
        *_versus_kayenta(results, us),
        *(_detection(results, us, scenario, BUSY) for scenario in HEADLINE),
        *(_speed(results, us, scenario, limit, BUSY) for scenario, limit in HEADLINE.items()),
        _detection(results, us, MEMORY_LEAK, tuple(TRAFFIC)),
        _speed(results, us, MEMORY_LEAK, MEMORY_MINUTES, tuple(TRAFFIC)),
        _late_versus_argo(results, us),
        _low_traffic_versus_oracle(results, us),
        _versus_argo(healthy, us),
    ]


def _percent(events: int, runs: int) -> str:
    return f"{100 * events / runs:.2f}% ({events}/{runs})" if runs else "no runs"


def _false_aborts(healthy: Sequence[Result], us: str) -> list[Target]:
    c = cell(healthy, us)
    on_slow = [r for r in healthy if r["facts"].get("slow_pod_on") == "canary"]
    slow = cell(on_slow, us)
    measured = f"{_percent(c.events, c.runs)}; of them with the slow pod on the canary: "
    measured += _percent(slow.events, slow.runs)
    return [
        Target(
            "false aborts on healthy canaries <= 1% (slow-pod runs included)",
            c.rate <= 0.01,
            measured,
        ),
        Target(
            "  ... with a Wilson 95% upper bound <= 2%", c.upper <= 0.02, f"{100 * c.upper:.2f}%"
        ),
    ]


def _tolerable(tolerable: Sequence[Result], us: str) -> Target:
    c = cell(tolerable, us)
    cells = [
        (cell(select(tolerable, scenario=s, traffic=t), us), f"{s} @ {t}")
        for s in sorted({r["scenario"] for r in tolerable})
        for t in TRAFFIC
    ]
    worst = max(cells, key=lambda pair: pair[0].rate if pair[0].runs else -1.0, default=None)
    shown = _percent(c.events, c.runs)
    if worst is not None:
        shown += f"; worst row {worst[1]}: {_percent(worst[0].events, worst[0].runs)}"
    return Target("aborts on regressions inside the tolerance <= 5%", c.rate <= 0.05, shown)


def _rows(
    results: Sequence[Result],
    traffics: Sequence[str],
    only: Callable[[Scenario], bool] | None = None,
) -> list[tuple[str, str, list[Result]]]:
    """(scenario, traffic, runs) of every regression row present, in the scenarios' order."""
    found = []
    for scenario in SCENARIOS:
        if scenario.group != "regression" or (only is not None and not only(scenario)):
            continue
        for traffic in traffics:
            chosen = select(results, scenario=scenario.name, traffic=traffic)
            if chosen:
                found.append((scenario.name, traffic, chosen))
    return found


def _median_or_never(results: Sequence[Result], decider: str) -> float:
    times = [
        r[decider]["minutes"] - r["onset_minute"] if detected(r, decider) else math.inf
        for r in results
    ]
    median = quantile(times, 0.5)
    return math.inf if median is None else median


def _listed(missed: list[str], rows: int) -> str:
    if not rows:
        return "no runs"
    if not missed:
        return f"all {rows} rows"
    more = f", and {len(missed) - _SHOWN_ROWS} more" if len(missed) > _SHOWN_ROWS else ""
    return f"{len(missed)} of {rows} rows missed: " + "; ".join(missed[:_SHOWN_ROWS]) + more


def _versus_kayenta(results: Sequence[Result], us: str) -> list[Target]:
    rows = _rows(results, BUSY)
    slower, fewer = [], []
    for scenario, traffic, chosen in rows:
        ours, theirs = cell(chosen, us), cell(chosen, "kayenta")
        if ours.rate < theirs.rate:
            fewer.append(f"{scenario} @ {traffic} {ours.rate:.0%} < {theirs.rate:.0%}")
        ours_time, theirs_time = (
            _median_or_never(chosen, us),
            _median_or_never(chosen, "kayenta"),
        )
        if not (ours_time <= theirs_time / 2 or math.isinf(theirs_time)):
            slower.append(f"{scenario} @ {traffic} {ours_time:g} vs {theirs_time:g} min")
    return [
        Target(
            "every regression row at >= 1,000 req/min: detection >= Kayenta-style's",
            bool(rows) and not fewer,
            _listed(fewer, len(rows)),
        ),
        Target(
            "  ... and median time to detect <= half of Kayenta-style's (a miss counts as never)",
            bool(rows) and not slower,
            _listed(slower, len(rows)),
        ),
    ]


def _detection(
    results: Sequence[Result], us: str, scenario: str, traffics: Sequence[str]
) -> Target:
    parts, met = [], True
    for traffic in traffics:
        c = cell(select(results, scenario=scenario, traffic=traffic), us)
        met &= c.runs > 0 and c.rate >= DETECTED_SHARE
        paused = f", {c.pauses} paused" if c.pauses else ""
        parts.append(f"{traffic} {_percent(c.events, c.runs)}{paused}")
    where = "at >= 1,000 req/min" if tuple(traffics) == BUSY else "at every traffic level"
    text = f">= {DETECTED_SHARE:.0%} of '{scenario}' aborted {where}"
    return Target(text, met, ", ".join(parts))


def _speed(
    results: Sequence[Result], us: str, scenario: str, limit: float, traffics: Sequence[str]
) -> Target:
    parts, met = [], True
    for traffic in traffics:
        chosen = select(results, scenario=scenario, traffic=traffic)
        median = _median_or_never(chosen, us)
        met &= bool(chosen) and median <= limit
        parts.append(f"{traffic} {median:g} min" if chosen else f"{traffic}: no runs")
    where = "at >= 1,000 req/min" if tuple(traffics) == BUSY else "at every traffic level"
    text = f"median time to detect '{scenario}' <= {limit:g} min {where} (a miss counts as never)"
    return Target(text, met, ", ".join(parts))


def _late_versus_argo(results: Sequence[Result], us: str) -> Target:
    rows = _rows(results, BUSY, lambda scenario: scenario.onset_minute > 0)
    fewer = []
    for scenario, traffic, chosen in rows:
        ours, theirs = cell(chosen, us), cell(chosen, "argo")
        if ours.rate < theirs.rate:
            fewer.append(f"{scenario} @ {traffic} {ours.rate:.0%} < {theirs.rate:.0%}")
    text = "late regressions at >= 1,000 req/min: detection >= Argo-style's"
    return Target(text, bool(rows) and not fewer, _listed(fewer, len(rows)))


def multiplier(regression: Regression) -> float | None:
    """How many times worse the regressed quantity is; None for a memory leak (a rate)."""
    if regression.kind in ("errors", "tail"):
        return regression.size
    if regression.kind == "latency":
        return 1.0 + regression.size
    return None


def _large(scenario: Scenario) -> bool:
    size = multiplier(scenario.regression)
    return size is not None and size >= LOW_TRAFFIC_MULTIPLIER


def _low_traffic_versus_oracle(results: Sequence[Result], us: str) -> Target:
    oracle_found = promoted = 0
    where: dict[str, int] = {}
    for _, _, chosen in _rows(results, (LOW,), _large):
        for r in chosen:
            if detected(r, "oracle"):
                oracle_found += 1
                if r[us]["decision"] == "promote":
                    promoted += 1
                    where[r["scenario"]] = where.get(r["scenario"], 0) + 1
    measured = f"{promoted} of the {oracle_found} runs the oracle detected were promoted"
    if where:
        measured += " (" + ", ".join(f"{name}: {count}" for name, count in where.items()) + ")"
    text = (
        f"at 100 req/min no regression x{LOW_TRAFFIC_MULTIPLIER:g} or larger promoted where "
        "the oracle detects it"
    )
    return Target(text, oracle_found > 0 and promoted == 0, measured)


def _versus_argo(healthy: Sequence[Result], us: str) -> Target:
    ours = sum(counted(r, us) for r in healthy)
    theirs = sum(counted(r, "argo") for r in healthy)
    runs = len(healthy)
    if runs == 0:
        return Target("false-abort rate >= 10x lower than Argo-style", False, "no runs")
    ratio = math.inf if ours == 0 else theirs / ours
    met = theirs > 0 and ratio >= 10
    measured = f"{_percent(ours, runs)} vs {_percent(theirs, runs)}: {ratio:.1f}x lower"
    # The ratio of two estimates: say how sure it is when our count is small.
    measured += f" (Wilson upper {100 * wilson_upper(ours, runs):.2f}%)"
    return Target("false-abort rate >= 10x lower than Argo-style", met, measured)


def render_targets(targets: Sequence[Target], title: str = "TARGETS for the default policy") -> str:
    lines = [title]
    for target in targets:
        lines.append(
            f"  [{'met' if target.met else 'NOT met':^7}] {target.text}: {target.measured}"
        )
    return "\n".join(lines)
