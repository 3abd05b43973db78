"""The recovery benchmark's plumbing, on its real stack: one abort and one dead router.

Not a timed test (the seconds are what the benchmark reports, README figures come from full
runs): what is asserted is behaviour the README promises, whatever the machine's speed: after the
API says a rollout is aborted, no request reaches the aborted version, and a router killed with
no rollout in flight comes back by itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import recovery


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    path = tmp_path_factory.mktemp("recovery") / "quick.json"
    return recovery.main(["--runs", "1", "--faults", "abort", "idle", "--json", str(path)]), path


def test_the_report_is_written_with_every_figure(report: tuple[dict[str, Any], Path]) -> None:
    payload, path = report
    assert json.loads(path.read_text(encoding="utf-8")) == payload
    assert payload["command"].startswith("python -m benchmarks.recovery --runs 1")
    assert set(payload["faults"]) == {"abort", "idle"}
    for figures in payload["faults"].values():
        for spread in figures.values():
            assert spread["runs"] == 1 and math.isfinite(spread["median"])


def test_after_the_api_says_aborted_no_request_reaches_the_aborted_version(
    report: tuple[dict[str, Any], Path],
) -> None:
    (sample,) = report[0]["samples"]["abort"]
    assert sample["served_by_it_afterwards"] == 0
    assert sample["api_says_aborted_s"] > 0


def test_a_router_killed_with_no_rollout_in_flight_comes_back(
    report: tuple[dict[str, Any], Path],
) -> None:
    (sample,) = report[0]["samples"]["idle"]
    assert sample["router_back_s"] > 0  # it answered again: the reconciler healed it
