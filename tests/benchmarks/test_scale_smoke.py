"""The scale benchmark's plumbing: a tiny run starts the stack and one real worker, the worker
advances rollouts, and the report carries every field with finite numbers.

Not a timed test and not a check of the 1,000-rollout target (that is what the full benchmark
reports): 5 rollouts analysed every 3 s for 8 s prove that samples reach the report.
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
    payload = scale.main([*argv, "--apps", "2", "--json", str(path)])
    return payload, path


def test_the_report_names_the_run_and_the_target(quick: tuple[dict[str, Any], Path]) -> None:
    payload, path = quick
    assert json.loads(path.read_text(encoding="utf-8")) == payload
    assert payload["command"].startswith("python -m benchmarks.scale --quick")
    assert payload["target_rollouts"] == 1000 and payload["lateness_limit_s"] == 2.0
    assert payload["pool"] == "solo" and payload["prometheus_samples_written"] > 0
    assert [row["rollouts"] for row in payload["rows"]] == [5]


def test_the_worker_advanced_rollouts_with_finite_lateness(
    quick: tuple[dict[str, Any], Path],
) -> None:
    row = quick[0]["rows"][0]
    assert row["advances"] > 0 and row["lateness_samples"] > 0 and row["looks_per_s"] > 0
    assert row["results"].get("stepped", 0) > 0
    for key in ("lateness_p50_s", "lateness_p99_s", "lateness_max_s", "advance_mean_ms"):
        assert math.isfinite(row[key]) and row[key] >= 0, key
    assert row["lateness_p50_s"] <= row["lateness_p99_s"] <= row["lateness_max_s"]
    assert row["advance_time_ms_by_part"]["prometheus"] > 0  # looks really queried Prometheus
    assert row["worker_cpu_pct"] > 0


def test_the_verdict_follows_the_rows(quick: tuple[dict[str, Any], Path]) -> None:
    payload = quick[0]
    passing = [row["rollouts"] for row in payload["rows"] if row["lateness_p99_s"] < 2.0]
    assert payload["largest_sustained"] == max(passing, default=None)
    assert payload["meets_target"] is False  # 5 rollouts can never meet a 1,000 target


def test_the_worker_is_stopped(quick: tuple[dict[str, Any], Path]) -> None:
    assert not pid_exists(quick[0]["rows"][0]["worker_pid"])
