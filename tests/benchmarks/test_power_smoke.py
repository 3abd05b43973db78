"""The power benchmark's plumbing: a quick run produces the tables, the targets and the JSON.

Not a timed test and not a check of the targets (that is what the full benchmark reports): it
proves that simulated data reaches Canarist through its real pipeline and that each decider's
answers land in the right rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analyzer.analysis import fetch
from analyzer.policy.loader import load_policy
from benchmarks import power
from benchmarks.feed import END, START, VERSIONS, source_for
from benchmarks.report import render_table, rows
from benchmarks.runner import DEFAULT_POLICY, Task, simulate_task
from benchmarks.scenarios import SCENARIOS
from benchmarks.simulator import TRAFFIC


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], str, Path]:
    path = tmp_path_factory.mktemp("power") / "quick.json"
    payload = power.main(["--quick", "--workers", "1", "--json", str(path)])
    return payload, path.read_text(encoding="utf-8"), path


def test_every_scenario_and_traffic_level_has_a_row_for_each_decider(quick) -> None:
    payload, _, _ = quick
    rows = payload["rows"]
    cells = {(row["scenario"], row["traffic"]) for row in rows}
    for scenario in SCENARIOS:
        for traffic in TRAFFIC:
            assert (scenario.name, traffic) in cells
    assert ("ALL healthy", "all") in cells and ("ALL tolerable", "all") in cells
    for row in rows:
        for decider in ("canarist", "argo", "kayenta", "oracle"):
            assert {"runs", "events", "rate", "wilson_upper_95", "median_minutes"} <= set(
                row[decider]
            )
            assert 0 <= row[decider]["events"] <= row[decider]["runs"]


def test_the_targets_are_all_reported_with_a_measurement(quick) -> None:
    payload, _, _ = quick
    texts = [target["target"] for target in payload["targets"]]
    assert len(texts) == 14
    assert any("healthy" in text for text in texts)
    assert any("Kayenta" in text for text in texts) and any("Argo" in text for text in texts)
    assert any("memory" in text for text in texts) and any("oracle" in text for text in texts)
    for key in ("targets", "oracle_targets"):
        assert all(
            isinstance(target["met"], bool) and target["measured"] for target in payload[key]
        )
    assert [t["target"] for t in payload["oracle_targets"]] == texts


def test_a_fourfold_error_regression_at_high_traffic_is_detected_by_canarist(quick) -> None:
    payload, _, _ = quick
    runs = [r for r in payload["runs"] if r["scenario"] == "errors x4" and r["traffic"] == "high"]
    assert runs
    for run in runs:
        assert run["canarist"]["decision"] == "abort"
        assert "error-ratio" in run["canarist"]["decided_by"]


def test_the_oracle_decides_every_run_and_detects_a_fourfold_error_regression(quick) -> None:
    payload, _, _ = quick
    for run in payload["runs"]:
        assert run["oracle"]["decision"] in ("abort", "promote")
        assert run["oracle"]["reason"]
    runs = [r for r in payload["runs"] if r["scenario"] == "errors x4" and r["traffic"] == "high"]
    for run in runs:
        assert run["oracle"]["decision"] == "abort" and "errors x4" in run["oracle"]["reason"]
    assert payload["assumptions"]["oracle"]["alpha"] == pytest.approx(0.01)


def test_the_printed_tables_show_the_four_deciders_side_by_side(quick) -> None:
    payload, _, _ = quick
    table = render_table(rows(payload["runs"]))
    false_aborts, detections = table.split("\n\n")
    for part in (false_aborts, detections):
        head = part.splitlines()[0]
        titles = ("Canarist", "Argo-style", "Kayenta-style", "Oracle")
        assert [head.index(title) for title in titles] == sorted(head.index(t) for t in titles)
    assert "HEALTHY" in false_aborts and "REGRESSIONS:" in detections
    for scenario in ("memory +1%/min", "tail only: slowest 10% x3"):
        assert sum(line.startswith(scenario) for line in detections.splitlines()) == 3


def test_the_json_file_holds_the_seed_and_every_run(quick) -> None:
    payload, text, _ = quick
    saved = json.loads(text)
    assert saved["seed"] == power.DEFAULT_SEED
    assert len(saved["runs"]) == len(payload["runs"]) > 0
    assert saved["assumptions"]["canary_weight"] == pytest.approx(0.1)


def test_canarist_reads_back_exactly_the_simulated_minutes() -> None:
    policy = load_policy(DEFAULT_POLICY)
    run = simulate_task(Task("scrape gaps", "medium", 0, power.DEFAULT_SEED))
    assert (run.canary.missing | run.canary.nan).any() or (
        run.baseline.missing | run.baseline.nan
    ).any()
    begin = START + policy.analysis.begin_after
    window = fetch(policy, source_for(policy, run), VERSIONS, begin, END)
    first = int(policy.analysis.begin_after.total_seconds() // 60)  # minutes not analysed
    data = {metric.metric.name: metric for metric in window.metrics}
    for version in ("baseline", "canary"):
        stream = getattr(run, version)
        lost = (stream.missing | stream.nan)[first:]
        counts = getattr(data["error-ratio"], version)
        np.testing.assert_array_equal(
            counts.totals, np.where(lost, np.nan, stream.requests[first:])
        )
        np.testing.assert_array_equal(counts.errors, np.where(lost, np.nan, stream.errors[first:]))
        histogram = getattr(data["latency"], version)
        expected = np.where(lost[:, None], np.nan, stream.buckets[first:])
        np.testing.assert_array_equal(histogram.counts, expected)
        memory = getattr(data["memory"], version)
        np.testing.assert_allclose(memory.values, np.where(lost, np.nan, stream.memory[first:]))
