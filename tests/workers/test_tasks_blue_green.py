"""Blue-green after the switch: the old version serves nobody, so the post-promotion analysis
compares the new version with the old one as it was just before the switch (and the report
says so).

The source here is what Prometheus would hold: the old version (v1) has traffic until the
switch and none after; the new one (v2) none before (the preview gets no users) and all after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from analyzer.sources.base import Series
from canarist.report import render_report
from tests.workers.conftest import DEMO_POLICY, FakeClock, Queued, drive, job, task_runtime
from workers.actions import Rollback, SwitchActive
from workers.intake import Intake
from workers.notify.memory import MemoryNotifier
from workers.platforms.memory import MemoryPlatform
from workers.state import Phase
from workers.store import MemoryStateStore
from workers.strategies import Analyze, Preview, RetireOld, Switch, baseline_shift
from workers.tasks import Runtime

BLUE_GREEN = DEMO_POLICY.replace("name: demo", "name: bg").split("strategy:")[0] + (
    "strategy:\n  type: blue_green\n  post_promotion_analyze: {duration: 20s}\n"
    "  scale_down_delay: 10s\nalerts: [oncall]\n"
)


@dataclass
class SwitchingSource:
    """Counts per interval: v1 before the switch, v2 after it (``error_ratio`` each)."""

    store: MemoryStateStore
    rollout_id: str = ""
    v1_error_ratio: float = 0.01
    v2_error_ratio: float = 0.01
    requests: float = 1000.0

    def switched_at(self) -> float:
        stages = self.store.events(self.rollout_id)
        return next(
            (e.at for e in stages if e.kind == "stage" and "switch" in e.message), float("inf")
        )

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        stamps = np.arange(start.timestamp(), end.timestamp() + 1e-6, step.total_seconds())
        new = 'version="v2"' in promql
        serving = stamps >= self.switched_at() if new else stamps < self.switched_at()
        ratio = self.v2_error_ratio if new else self.v1_error_ratio
        per_interval = self.requests * (ratio if 'code=~"5.."' in promql else 1.0)
        stamps = stamps[serving]
        return [Series({}, stamps, np.full(stamps.size, per_interval))] if stamps.size else []


def runtime_for(
    store: MemoryStateStore, intake: Intake, source: SwitchingSource, clock: FakeClock, q: Queued
) -> tuple[Runtime, MemoryPlatform]:
    platform = MemoryPlatform()
    return task_runtime(store, intake, source, platform, clock, q, MemoryNotifier()), platform


@pytest.mark.parametrize(
    ("v2_error_ratio", "outcome"), [(0.01, Phase.PROMOTED), (0.05, Phase.ABORTED)]
)
def test_the_post_switch_analysis_compares_with_the_old_version_before_the_switch(
    memory_store: MemoryStateStore,
    intake: Intake,
    policy_dir: Path,
    clock: FakeClock,
    queued: Queued,
    v2_error_ratio: float,
    outcome: Phase,
) -> None:
    (policy_dir / "bg.yaml").write_text(BLUE_GREEN)
    source = SwitchingSource(memory_store, v2_error_ratio=v2_error_ratio)
    runtime, platform = runtime_for(memory_store, intake, source, clock, queued)
    source.rollout_id = intake.submit(job(policy="bg"), "alice").rollout_id

    assert drive(runtime, queued, clock).phase is outcome

    looks = [e for e in memory_store.events(source.rollout_id) if e.kind == "analysis"]
    assert looks, "the post-switch analysis ran"
    first = looks[0].data["verdict"]["metrics"][0]["judgement"]
    assert first["baseline"]["requests"] > 0  # the old version, read from before the switch
    assert looks[0].data["verdict"]["baseline_shift"] == 20.0  # begin_after 0 + 20 s analysis
    assert SwitchActive() in platform.actions_for(source.rollout_id)
    page = render_report(memory_store, source, intake.policy("bg"), source.rollout_id, now=clock())
    assert "The baseline is the old version as it was 20s earlier" in page
    if outcome is Phase.ABORTED:
        assert platform.actions_for(source.rollout_id)[-1] == Rollback(
            memory_store.load(source.rollout_id).state.abort_reason or "", switch_back=True
        )


def test_the_shift_applies_from_the_switch_on_and_spans_the_post_switch_stage() -> None:
    plan = (Preview(), Analyze(60.0), Switch(), Analyze(600.0), RetireOld(900.0))
    assert [baseline_shift(plan, i, 30.0) for i in range(len(plan))] == [0, 0, 630, 630, 630]
    without_analysis = (Preview(), Switch(), RetireOld(900.0))
    assert baseline_shift(without_analysis, 2, 0.0) == 900.0
    assert baseline_shift((Analyze(60.0),), 0, 30.0) == 0.0  # a canary: same time
