"""Intake refuses, at submit, a job whose policy's load cannot be sent: a platform that cannot
address the new version alone, or a recorded sample that is missing or unreadable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.conftest import DEMO_POLICY, Queued, job
from workers.errors import InvalidJobError
from workers.intake import Intake
from workers.store import MemoryStateStore

STRATEGY = """strategy:
  type: canary
  steps:
    - set_weight: 50
    - analyze: {duration: 10s}
    - set_weight: 100
"""
PREVIEW = """strategy:
  type: blue_green
  analyze: {duration: 1m, load: {rate: 10/s, requests: checkout.txt}}
"""


@pytest.fixture
def preview(policy_dir: Path) -> str:
    (policy_dir / "preview.yaml").write_text(
        DEMO_POLICY.replace("name: demo", "name: preview").replace(STRATEGY, PREVIEW)
    )
    return "preview"


def test_a_platform_that_cannot_address_the_preview_is_refused(
    intake: Intake, memory_store: MemoryStateStore, queued: Queued, preview: str
) -> None:
    with pytest.raises(InvalidJobError) as refused:
        intake.submit(job(policy=preview, platform="observe"), "alice")
    assert str(refused.value) == (
        "policy 'preview' asks for synthetic load, which platform observe cannot address to the "
        "new version alone (it can on kubernetes, local): use one of those, or drop load: from "
        "the policy"
    )
    assert memory_store.list_rollouts() == [] and queued.advance == []


def test_a_missing_or_unreadable_sample_is_refused_and_a_readable_one_accepted(
    intake: Intake, memory_store: MemoryStateStore, policy_dir: Path, preview: str
) -> None:
    with pytest.raises(InvalidJobError, match=r"names the load sample 'checkout\.txt', which is"):
        intake.submit(job(policy=preview, platform="kubernetes"), "alice")
    (policy_dir / "checkout.txt").write_text("GET /api/items\nSHOUT /\n")
    with pytest.raises(InvalidJobError, match=r"checkout.txt:2: not a request like 'GET /items'"):
        intake.submit(job(policy=preview, platform="kubernetes"), "alice")
    (policy_dir / "checkout.txt").write_text("GET /api/items\nPOST /api/cart\n")
    submitted = intake.submit(job(policy=preview, platform="kubernetes"), "alice")
    assert memory_store.load(submitted.rollout_id).state.spec.platform == "kubernetes"
