"""From per-run results to the side-by-side table and the targets, as text and as JSON.

Definitions used throughout:

- abort rate: runs that ended in an abort, over runs. Canarist can also end INCONCLUSIVE (the
  policy pauses for a person); that is reported as ``pause`` and is not an abort.
- detection: an abort decided after the regression began (for late onset, a look that already
  covers a regressed minute); an abort before the onset is counted as a false abort instead.
- time to detect: minutes from the regression's onset to the deciding look (for most scenarios
  the onset is the canary's start); median and p90 over detected runs (``inverted_cdf``: a value
  some run actually had).
- Wilson 95% upper bound: the upper end of the two-sided 95% Wilson score interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.scenarios import SCENARIOS
from benchmarks.simulator import TRAFFIC

DECIDER_TITLES = {
    "canarist": "Canarist",
    "argo": "Argo-style",
    "kayenta": "Kayenta-style",
    "oracle": "Oracle",
}
Result = dict[str, Any]


def wilson_upper(events: int, runs: int, z: float = 1.959964) -> float:
    if runs == 0:
        return 1.0
    share = events / runs
    centre = share + z * z / (2 * runs)
    spread = z * math.sqrt(share * (1 - share) / runs + z * z / (4 * runs * runs))
    return min(1.0, (centre + spread) / (1 + z * z / runs))


def detected(result: Result, decider: str) -> bool:
    outcome = result[decider]
    return bool(outcome["decision"] == "abort" and outcome["minutes"] > result["onset_minute"])


def counted(result: Result, decider: str) -> bool:
    """The event a row counts: a (false) abort for healthy and tolerable, a detection otherwise."""
    if result["group"] == "regression":
        return detected(result, decider)
    return bool(result[decider]["decision"] == "abort")


def quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.quantile(np.asarray(values, dtype=np.float64), q, method="inverted_cdf"))


@dataclass(frozen=True)
class Cell:
    runs: int
    events: int
    median: float | None
    p90: float | None
    pauses: int

    @property
    def rate(self) -> float:
        return self.events / self.runs if self.runs else math.nan

    @property
    def upper(self) -> float:
        return wilson_upper(self.events, self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "events": self.events,
            "rate": self.rate,
            "wilson_upper_95": self.upper,
            "median_minutes": self.median,
            "p90_minutes": self.p90,
            "pauses": self.pauses,
        }


def cell(results: Sequence[Result], decider: str) -> Cell:
    times = [r[decider]["minutes"] - r["onset_minute"] for r in results if counted(r, decider)]
    return Cell(
        runs=len(results),
        events=sum(counted(r, decider) for r in results),
        median=quantile(times, 0.5),
        p90=quantile(times, 0.9),
        pauses=sum(r[decider]["decision"] == "inconclusive" for r in results),
    )


@dataclass(frozen=True)
class Row:
    group: str
    scenario: str
    traffic: str
    cells: dict[str, Cell]

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "scenario": self.scenario,
            "traffic": self.traffic,
            **{decider: c.to_json() for decider, c in self.cells.items()},
        }


def rows(results: Sequence[Result]) -> list[Row]:
    """One row per scenario and traffic level, then pooled rows for healthy and tolerable."""
    table: list[Row] = []
    for group in ("healthy", "tolerable", "regression"):
        for scenario in (s.name for s in SCENARIOS if s.group == group):
            for traffic in TRAFFIC:
                chosen = select(results, scenario=scenario, traffic=traffic)
                if chosen:
                    table.append(_row(group, scenario, traffic, chosen))
        if group == "regression":
            continue
        for traffic in (*TRAFFIC, "all"):
            chosen = select(results, group=group, traffic=None if traffic == "all" else traffic)
            if chosen:
                table.append(_row(group, f"ALL {group}", traffic, chosen))
    return table


def _row(group: str, scenario: str, traffic: str, chosen: Sequence[Result]) -> Row:
    return Row(group, scenario, traffic, {d: cell(chosen, d) for d in DECIDER_TITLES})


def select(
    results: Iterable[Result],
    *,
    group: str | None = None,
    scenario: str | None = None,
    traffic: str | Iterable[str] | None = None,
) -> list[Result]:
    traffics = {traffic} if isinstance(traffic, str) else set(traffic or ())
    return [
        r
        for r in results
        if (group is None or r["group"] == group)
        and (scenario is None or r["scenario"] == scenario)
        and (not traffics or r["traffic"] in traffics)
    ]


_HEADINGS = {
    "healthy": "HEALTHY canaries: false-abort rate [Wilson 95% upper bound]",
    "tolerable": "REGRESSIONS INSIDE THE TOLERANCE: abort rate [Wilson 95% upper bound]",
    "regression": "REGRESSIONS: detection rate, median / p90 minutes to detect (from onset)",
}
Column = tuple[str, Callable[[Cell], str]]
_FALSE_ABORT_COLUMNS: tuple[Column, ...] = (
    ("rate", lambda c: f"{100 * c.rate:.1f}%"),
    ("95% up", lambda c: f"{100 * c.upper:.1f}%"),
)
_DETECTION_COLUMNS: tuple[Column, ...] = (
    ("rate", lambda c: f"{100 * c.rate:.0f}%"),
    ("med", lambda c: _minutes(c.median)),
    ("p90", lambda c: _minutes(c.p90)),
)
_PAUSE_COLUMN: Column = ("pause", lambda c: f"{100 * c.pauses / c.runs:.0f}%" if c.runs else "-")
_WIDTH = 6


def render_table(table: Sequence[Row]) -> str:
    """Two tables, the four deciders side by side in each: false aborts (healthy and tolerable
    rows), then detection (regression rows). Only Canarist can pause, so only it has a column for
    it."""
    aborts = [row for row in table if row.group != "regression"]
    detections = [row for row in table if row.group == "regression"]
    return "\n\n".join(
        _render(chosen, columns)
        for chosen, columns in ((aborts, _FALSE_ABORT_COLUMNS), (detections, _DETECTION_COLUMNS))
        if chosen
    )


def _render(table: Sequence[Row], columns: tuple[Column, ...]) -> str:
    def of(decider: str) -> tuple[Column, ...]:
        return (*columns, _PAUSE_COLUMN) if decider == "canarist" else columns

    def width(decider: str) -> int:
        return len(of(decider)) * (_WIDTH + 1) - 1

    names = list(DECIDER_TITLES)
    head = f"{'scenario':<28}{'traffic':>8}{'runs':>6}"
    head += "".join(f" | {DECIDER_TITLES[d]:^{width(d)}}" for d in names)
    sub = " " * 42 + "".join(
        " | " + " ".join(f"{title:>{_WIDTH}}" for title, _ in of(d)) for d in names
    )
    lines = [head, sub, "-" * len(head)]
    group = None
    for row in table:
        if row.group != group:
            group = row.group
            lines.append(_HEADINGS[group])
        runs = next(iter(row.cells.values())).runs
        line = f"{row.scenario:<28}{row.traffic:>8}{runs:>6}"
        for decider in names:
            cell = row.cells[decider]
            line += " | " + " ".join(f"{shown(cell):>{_WIDTH}}" for _, shown in of(decider))
        lines.append(line)
    return "\n".join(lines)


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
