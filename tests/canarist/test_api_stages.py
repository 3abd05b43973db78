"""Stage labels: read through intake's one cache of policy files, with its check of names."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from canarist.api.factory import create_app
from canarist.api.stages import PlanLabels
from canarist.settings import Settings
from tests.workers.conftest import DEMO_POLICY, FakeClock, Queued, job
from workers.intake import Intake
from workers.state import RolloutState
from workers.store import MemoryStateStore

ONE_STEP = DEMO_POLICY.replace("    - set_weight: 50\n    - analyze: {duration: 10s}\n", "")


@pytest.fixture
def intake(tmp_path: Path) -> Intake:
    (tmp_path / "demo.yaml").write_text(DEMO_POLICY)
    queued = Queued()
    return Intake(
        MemoryStateStore(), tmp_path, FakeClock(), queued.enqueue, alert_routes={"oncall"}
    )


@pytest.fixture
def pinned(intake: Intake) -> RolloutState:
    return intake.get(intake.submit(job(), "alice").rollout_id)[0]


@pytest.fixture
def state(pinned: RolloutState) -> RolloutState:
    """A rollout stored before pinning: it reads its policy file by name."""
    return replace(pinned, policy_digest=None)


def test_a_pinned_rollout_keeps_the_label_of_its_pinned_policy(
    intake: Intake, pinned: RolloutState
) -> None:
    labels = PlanLabels(intake.policy_for)
    before = labels(pinned)
    (intake.policies.root / "demo.yaml").write_text(ONE_STEP)
    assert labels(pinned) == before != (None, None)
    (intake.policies.root / "demo.yaml").unlink()
    assert labels(pinned) == before


def test_the_label_follows_the_policy_file(intake: Intake, state: RolloutState) -> None:
    labels = PlanLabels(intake.policy_for)
    label, count = labels(state)
    assert label is not None and count is not None and count > 1
    (intake.policies.root / "demo.yaml").write_text(ONE_STEP)
    assert labels(state)[1] == count - 2


def test_a_policy_that_does_not_load_leaves_the_label_unknown_and_is_logged_once(
    intake: Intake, state: RolloutState, caplog: pytest.LogCaptureFixture
) -> None:
    (intake.policies.root / "demo.yaml").write_text("name: demo\nanalysis:\n  interval: soon\n")
    labels = PlanLabels(intake.policy_for)
    with caplog.at_level(logging.WARNING, logger="canarist.api"):
        assert [labels(state) for _ in range(3)] == [(None, None)] * 3
    assert caplog.text.count("policy demo does not load") == 1


@pytest.mark.parametrize("name", ["Demo", "demo_", "../demo"])
def test_a_name_that_is_no_policy_name_has_no_label(
    intake: Intake, state: RolloutState, name: str
) -> None:
    (intake.policies.root / f"{name.strip('./')}.yaml").write_text(DEMO_POLICY)
    assert PlanLabels(intake.policy_for)(replace(state, policy=name)) == (None, None)


def test_the_api_labels_stages_from_the_policies_its_intake_reads(
    intake: Intake, state: RolloutState, tmp_path: Path
) -> None:
    elsewhere = Settings(policy_dir=tmp_path / "elsewhere")
    services = create_app(elsewhere, intake).state.services
    assert services.labels(state) == PlanLabels(intake.policy_for)(state) != (None, None)
