"""The analysis-cost benchmark's plumbing: a quick run times every cell and judges the target.

Not a timed test and not a check of the 20 ms target (that is what the full benchmark reports):
it proves that each kind of canary reaches the judges it is meant to exercise (the slow pod's
per-pod check, the regression's FAIL) and that every cell carries finite, positive figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import analysis_cost
from benchmarks.simulator import TRAFFIC


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    path = tmp_path_factory.mktemp("cost") / "quick.json"
    return analysis_cost.main(["--quick", "--json", str(path)]), path


def test_every_kind_traffic_and_look_is_timed_beside_the_reference(
    quick: tuple[dict[str, Any], Path],
) -> None:
    payload, path = quick
    assert json.loads(path.read_text(encoding="utf-8")) == payload
    cells = {(c["kind"], c["traffic"], c["look_minute"]) for c in payload["cells"]}
    assert cells == {
        (kind, traffic, minutes)
        for kind in analysis_cost.KINDS
        for traffic in TRAFFIC
        for minutes in analysis_cost.LOOK_MINUTES
    }
    for cell in payload["cells"]:
        assert len(cell["rounds_ms"]) == payload["rounds"] == 2
        for figure in (*cell["rounds_ms"], cell["slowest_ms"], cell["kayenta_median_ms"]):
            assert math.isfinite(figure) and figure > 0
        assert cell["slowest_ms"] >= max(cell["rounds_ms"])


def test_the_regression_fails_and_the_slow_pod_is_held_for_a_person(
    quick: tuple[dict[str, Any], Path],
) -> None:
    payload, _ = quick
    at_40 = {(c["kind"], c["traffic"]): c for c in payload["cells"] if c["look_minute"] == 40}
    for traffic in TRAFFIC:
        assert at_40["latency +25%", traffic]["outcome"] == "fail"
        slow = at_40["one slow pod", traffic]
        assert slow["outcome"] == "inconclusive"
        assert slow["reason_codes"]["latency"] == "one_pod"  # the per-pod check ran
        assert at_40["healthy", traffic]["outcome"] != "fail"


def test_the_target_names_its_worst_cell(quick: tuple[dict[str, Any], Path]) -> None:
    payload, _ = quick
    target = payload["target"]
    assert "20 ms" in target["target"] and isinstance(target["met"], bool)
    assert "look at minute" in target["measured"]
