"""A policy with ``analysis.baseline: fresh``: the selector of the fresh baseline's series is
snapshotted at submit, and platforms that cannot start a baseline are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from analyzer.policy.promql import Selector
from tests.workers.conftest import DEMO_POLICY, job
from workers.errors import InvalidJobError
from workers.intake import Intake
from workers.job import fresh_baseline_selector
from workers.store import MemoryStateStore

FRESH = DEMO_POLICY.replace("name: demo", "name: fresh").replace(
    "  interval: 5s\n", "  interval: 5s\n  baseline: fresh\n  pod_label: kubernetes_pod\n"
)


@pytest.fixture
def fresh_policy(policy_dir: Path) -> Path:
    (policy_dir / "fresh.yaml").write_text(FRESH)
    return policy_dir


def test_kubernetes_reads_only_the_baseline_pods_never_the_stable_fleet(
    intake: Intake, memory_store: MemoryStateStore, fresh_policy: Path
) -> None:
    submitted = intake.submit(job(policy="fresh", platform="kubernetes"), "alice")
    spec = memory_store.load(submitted.rollout_id).state.spec
    assert spec.fresh_baseline
    assert spec.baseline_selector == 'app="checkout",version="v1"'  # the job's, as given
    compared = spec.versions().baseline
    assert compared == Selector.parse('app="checkout",kubernetes_pod=~"checkout-baseline-.+"')


def test_the_job_may_name_the_baseline_series_itself(
    intake: Intake, memory_store: MemoryStateStore, fresh_policy: Path
) -> None:
    given = 'app="checkout",role="baseline"'
    submitted = intake.submit(
        job(policy="fresh", platform="kubernetes", fresh_baseline=given), "alice"
    )
    spec = memory_store.load(submitted.rollout_id).state.spec
    assert spec.versions().baseline == Selector.parse(given)


def test_the_default_compares_with_the_stable_fleet(
    intake: Intake, memory_store: MemoryStateStore
) -> None:
    submitted = intake.submit(job(platform="kubernetes"), "alice")
    spec = memory_store.load(submitted.rollout_id).state.spec
    assert not spec.fresh_baseline and spec.fresh_baseline_selector == ""
    assert spec.versions().baseline == Selector.parse('app="checkout",version="v1"')


def test_a_platform_that_starts_no_baseline_is_refused(intake: Intake, fresh_policy: Path) -> None:
    with pytest.raises(InvalidJobError, match="which platform observe cannot start"):
        intake.submit(job(policy="fresh", platform="observe"), "alice")


def test_a_fresh_baseline_selector_without_a_fresh_policy_is_refused(intake: Intake) -> None:
    with pytest.raises(InvalidJobError, match="compares the canary with the stable fleet"):
        intake.submit(job(platform="kubernetes", fresh_baseline='app="x"'), "alice")


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"fresh_baseline": "app=checkout"}, "quoted value"),
        ({"fresh_baseline": 'app="checkout",version="v2"'}, "the same series"),
    ],
)
def test_a_bad_fresh_baseline_selector_is_refused(overrides: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        job(**overrides)


def test_the_digest_of_a_job_without_the_field_is_unchanged() -> None:
    assert "fresh_baseline" not in job().model_dump_json(exclude_none=True)
    assert job().digest() != job(fresh_baseline='app="checkout",role="b"').digest()


def test_local_processes_are_told_apart_by_their_track() -> None:
    selector = fresh_baseline_selector(
        'app="checkout",version="v1",track="stable"', "local", "checkout", "pod", "version"
    )
    assert selector == 'app="checkout",version="v1",track="baseline"'
