"""The scale benchmark's plumbing: a tiny run starts the stack and real workers (one, then
two), they advance rollouts, and the report carries every field with finite numbers.

Not a timed test and not a check of the targets (that is what the full benchmark reports):
5 rollouts per worker analysed every 3 s for 8 s prove that samples reach the report, and that
a look costs the Prometheus requests it should.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import scale
from canarist.demo.stack import pid_exists


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    path = tmp_path_factory.mktemp("scale") / "quick.json"
    argv = ["--quick", "--rollouts", "5", "--interval", "3", "--warmup", "4", "--measure", "8"]
    argv += ["--workers", "1", "2"]
    payload = scale.main([*argv, "--apps", "2", "--json", str(path)])
    return payload, path


def test_the_report_names_the_run_and_the_target(quick: tuple[dict[str, Any], Path]) -> None:
    payload, path = quick
    assert json.loads(path.read_text(encoding="utf-8")) == payload
    assert payload["command"].startswith("python -m benchmarks.scale --quick")
    assert payload["lateness_limit_s"] == 2.0
    assert payload["pool"] == "solo" and payload["prometheus_samples_written"] > 0
    assert [(row["rollouts"], row["workers"]) for row in payload["rows"]] == [(5, 1), (10, 2)]
    assert [target["target"] for target in payload["targets"]] == [
        "one worker, 1000 rollouts: p99 lateness < 0.5 s",
        "one worker, 2000 rollouts: p99 lateness < 2 s",
        "two workers: >= 1.6x the throughput of one",
        "per advance: <= 10 ms of worker CPU",
        "per advance: <= 4 Prometheus requests",
    ]
    assert not payload["meets_targets"]  # 5 rollouts never meet a 1,000-rollout target


@pytest.mark.parametrize("index", [0, 1], ids=["one worker", "two workers"])
def test_the_workers_advanced_rollouts_with_finite_lateness(
    quick: tuple[dict[str, Any], Path], index: int
) -> None:
    row = quick[0]["rows"][index]
    assert row["advances"] > 0 and row["lateness_samples"] > 0 and row["looks_per_s"] > 0
    assert row["results"].get("stepped", 0) > 0
    for key in ("lateness_p50_s", "lateness_p99_s", "lateness_max_s", "advance_mean_ms"):
        assert math.isfinite(row[key]) and row[key] >= 0, key
    assert row["lateness_p50_s"] <= row["lateness_p99_s"] <= row["lateness_max_s"]
    assert row["advance_time_ms_by_part"]["prometheus"] > 0  # looks really queried Prometheus
    assert row["worker_cpu_pct"] > 0 and row["cpu_ms_per_advance"] > 0
    assert row["prometheus_cpu_pct"] > 0 and row["redis_commands_per_advance"] > 0
    assert 1 <= row["queries_per_look"] <= 4  # the default policy's look, batched
    assert len(row["worker_pids"]) == row["workers"]
    # every rollout aborted after the measured period was rolled back, in seconds
    assert len(row["abort_seconds"]) == min(10, row["rollouts"])
    assert all(seconds is not None and seconds < 60 for seconds in row["abort_seconds"])


def test_the_spread_and_the_one_worker_verdict_follow_the_rows(
    quick: tuple[dict[str, Any], Path],
) -> None:
    payload = quick[0]
    level = payload["levels"][0]
    assert (level["rollouts"], level["workers"]) == (5, 1)
    p99 = payload["rows"][0]["lateness_p99_s"]
    assert level["lateness_p99_s"] == {"min": p99, "median": p99, "max": p99}
    one = [row for row in payload["rows"] if row["workers"] == 1 and row["lateness_p99_s"] < 2]
    assert payload["largest_sustained_one_worker"] == (5 if one else None)


def test_the_workers_are_stopped(quick: tuple[dict[str, Any], Path]) -> None:
    for row in quick[0]["rows"]:
        assert not any(pid_exists(pid) for pid in row["worker_pids"])
