"""Policies as the server holds them: the files it reads, and the policy each rollout pins at
submit and keeps to the end, whatever becomes of the file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.workers.conftest import DEMO_POLICY, job
from tests.workers.test_store import each_store
from workers.actions import PlatformReady
from workers.errors import InvalidJobError, NotFound, UnknownPolicyError
from workers.intake import Intake
from workers.policies import PinnedPolicies, PolicyDir, short_digest
from workers.state import Phase
from workers.store import MemoryStateStore, StateStore

EDITED = DEMO_POLICY.replace("tolerance: 0.25", "tolerance: 0.05")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    yield from each_store(request)


def test_a_policy_text_is_kept_by_its_sha256_once_and_read_back(store: StateStore) -> None:
    digest = store.policies.put(DEMO_POLICY)
    assert digest == sha256(DEMO_POLICY.encode())
    assert store.policies.put(DEMO_POLICY) == digest
    assert store.policies.get(digest) == DEMO_POLICY
    other = store.policies.put(EDITED)
    assert other != digest and store.policies.get(other) == EDITED
    assert store.policies.get(digest) == DEMO_POLICY  # content-addressed: never changed
    with pytest.raises(NotFound):
        store.policies.get("0" * 64)


def test_the_policy_dir_reads_text_digest_and_summary_and_keeps_a_broken_file(
    policy_dir: Path,
) -> None:
    (policy_dir / "broken.yml").write_text("name: broken\nanalysis:\n  interval: soon\n")
    (policy_dir / "latin.yaml").write_bytes(b"name: caf\xe9\n")
    (policy_dir / "notes.txt").write_text("not a policy")
    policies = PolicyDir(policy_dir)
    assert policies.names() == ["broken", "demo", "latin", "with-args"]
    demo = policies.read("demo")
    assert demo.text == DEMO_POLICY and demo.error is None and demo.policy is not None
    assert demo.digest == sha256((policy_dir / "demo.yaml").read_bytes())
    assert demo.modified_at == pytest.approx((policy_dir / "demo.yaml").stat().st_mtime)
    broken = policies.read("broken")
    assert broken.policy is None and broken.error is not None
    assert "analysis.interval" in str(broken.error)
    latin = policies.read("latin")
    assert latin.policy is None and latin.digest == sha256(b"name: caf\xe9\n")
    assert latin.error is not None and "UTF-8" in str(latin.error)
    with pytest.raises(UnknownPolicyError, match="no policy 'absent'"):
        policies.read("absent")


def test_only_policy_files_are_listed(policy_dir: Path) -> None:
    (policy_dir / "folder.yaml").mkdir()
    (policy_dir / "dangling.yaml").symlink_to(policy_dir / "nowhere" / "x.yaml")
    (policy_dir / "Upper.yaml").write_text(DEMO_POLICY)
    (policy_dir / "twin.yml").write_text(DEMO_POLICY.replace("name: demo", "name: twin"))
    assert PolicyDir(policy_dir).names() == ["demo", "twin", "with-args"]


def test_a_submission_pins_the_policy_it_was_checked_against(
    intake: Intake, policy_dir: Path
) -> None:
    state = intake.get(intake.submit(job(), "ci").rollout_id)[0]
    digest = sha256((policy_dir / "demo.yaml").read_bytes())
    assert state.policy_digest == digest
    assert intake.store.policies.get(digest) == DEMO_POLICY
    assert intake.store.load(state.id).state.policy_digest == digest


def test_an_edited_policy_changes_the_next_rollouts_never_those_in_flight(
    intake: Intake, policy_dir: Path
) -> None:
    first = intake.get(intake.submit(job(), "ci").rollout_id)[0]
    (policy_dir / "demo.yaml").write_text(EDITED)
    pinned = intake.policy_for(first)
    assert pinned.metrics[0].model_dump()["tolerance"] == 0.25
    assert intake.policy_for(first) is pinned  # parsed once per digest
    second = intake.get(intake.submit(job(version="v3"), "ci").rollout_id)[0]
    assert second.policy_digest == sha256(EDITED.encode()) != first.policy_digest
    assert intake.policy_for(second).metrics[0].model_dump()["tolerance"] == 0.05
    # a rollout stored before pinning reads the file by name, as before
    unpinned = replace(first, policy_digest=None)
    assert intake.policy_for(unpinned).metrics[0].model_dump()["tolerance"] == 0.05


def test_commands_and_a_retry_keep_the_pinned_policy_even_with_the_file_gone(
    intake: Intake, policy_dir: Path
) -> None:
    rollout_id = intake.submit(job(), "ci").rollout_id
    digest = intake.get(rollout_id)[0].policy_digest
    (policy_dir / "demo.yaml").unlink()
    assert intake.command(rollout_id, "abort", "alice").applied
    aborted = intake.get(rollout_id)[0]
    assert aborted.phase in (Phase.ABORTING, Phase.ABORTED)
    if aborted.awaiting is not None:  # the rollback, applied and ready
        intake.tell(rollout_id, PlatformReady(aborted.awaiting))
    retried = intake.command(rollout_id, "retry", "alice").state
    assert retried.attempt == 2 and retried.policy_digest == digest


def test_a_pinned_policy_missing_or_altered_in_the_store_is_refused_by_name() -> None:
    store = MemoryStateStore()
    pinned = PinnedPolicies(store.policies)
    with pytest.raises(InvalidJobError, match=r"policy 'demo' as pinned \(000000000000\) is miss"):
        pinned.load("demo", "0" * 64)
    digest = store.policies.put("name: demo\n")
    with pytest.raises(InvalidJobError, match=f"as pinned \\({short_digest(digest)}\\) does not"):
        pinned.load("demo", digest)
