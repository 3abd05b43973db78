"""What intake checks a valid job against before it creates anything: every query of the policy
rendered with the job's args, alert routes the service defines, the policy named without the
server's paths; and idempotency keys bound to the whole job, per namespace, for a day."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import Policy, load_policy_text
from tests.workers.conftest import DEMO_POLICY, FakeClock, Queued, job, trail
from workers import policies as policies_module
from workers.actions import RecordEvent
from workers.errors import InvalidJobError, NotFound, UnknownPolicyError
from workers.intake import Intake, PolicyDir
from workers.store import IDEMPOTENCY_TTL_SECONDS, MemoryStateStore

BARE_ARG_POLICY = """
name: bare
args:
  - name: window
    default: 5m
  - name: route
    default: "/"
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }}, route="{{ route }}" }[{{ window }}]))
    total: sum(increase(t{ {{ selector }} }[{{ window }}]))
strategy:
  type: canary
  steps:
    - set_weight: 100
"""


@pytest.fixture
def bare(policy_dir: Path) -> str:
    (policy_dir / "bare.yaml").write_text(BARE_ARG_POLICY)
    return "bare"


# -- args are rendered into every query at submit ----------------------------------------------


def test_an_arg_outside_quotes_that_is_not_a_number_or_duration_is_refused(
    intake: Intake, memory_store: MemoryStateStore, queued: Queued, bare: str
) -> None:
    with pytest.raises(InvalidJobError) as refused:
        intake.submit(job(policy=bare, args={"window": "3s]) or vector(1) #"}), "mallory")
    message = str(refused.value)
    assert message.startswith("args: metric 'errors' (errors): window='3s]) or vector(1) #'")
    assert "must be a number or a duration" in message
    assert memory_store.list_rollouts() == [] and queued.advance == []


def test_args_the_queries_accept_are_submitted(
    intake: Intake, memory_store: MemoryStateStore, bare: str
) -> None:
    args = {"window": "90s", "route": '/pay"} or vector(1) #'}  # quoted: escaped, harmless
    submitted = intake.submit(job(policy=bare, args=args), "alice")
    assert memory_store.load(submitted.rollout_id).state.spec.args_map == args


# -- alert routes ------------------------------------------------------------------------------


def test_a_policy_naming_an_undefined_alert_route_is_refused_naming_the_defined_ones(
    memory_store: MemoryStateStore, policy_dir: Path, clock: FakeClock, queued: Queued
) -> None:
    (policy_dir / "paging.yaml").write_text(
        DEMO_POLICY.replace("name: demo", "name: paging").replace("[oncall]", "[oncall, pager]")
    )
    intake = Intake(
        memory_store, policy_dir, clock, queued.enqueue, alert_routes={"oncall", "slack"}
    )
    with pytest.raises(InvalidJobError) as refused:
        intake.submit(job(policy="paging"), "alice")
    assert "'pager'" in str(refused.value) and "'oncall'" not in str(refused.value)
    assert "alert_routes defined: oncall, slack" in str(refused.value)
    assert memory_store.list_rollouts() == []
    assert intake.submit(job(), "alice").created  # demo names only oncall


def test_without_any_route_defined_a_policy_with_alerts_is_refused(
    memory_store: MemoryStateStore, policy_dir: Path, clock: FakeClock, queued: Queued
) -> None:
    intake = Intake(memory_store, policy_dir, clock, queued.enqueue, alert_routes=())
    with pytest.raises(InvalidJobError, match=r"defined: none"):
        intake.submit(job(), "alice")


# -- what a refusal says -----------------------------------------------------------------------


def test_an_unknown_policy_names_the_policy_not_the_servers_directory(
    intake: Intake, policy_dir: Path
) -> None:
    with pytest.raises(UnknownPolicyError) as refused:
        intake.submit(job(policy="nope"), "alice")
    assert str(refused.value) == "no policy 'nope'"
    assert str(policy_dir) not in str(refused.value)


def test_a_broken_policy_names_its_file_and_line_but_not_the_directory(
    intake: Intake, policy_dir: Path
) -> None:
    (policy_dir / "broken.yaml").write_text("name: broken\nanalysis:\n  interval: soon\n")
    with pytest.raises(InvalidJobError) as refused:
        intake.submit(job(policy="broken"), "alice")
    assert "\nbroken.yaml:3: analysis.interval" in str(refused.value)
    assert str(policy_dir) not in str(refused.value)


def test_a_policy_file_is_read_once_per_version_and_a_broken_one_too(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []

    def counted(text: str, source: str) -> Policy:
        reads.append(Path(source))
        return load_policy_text(text, source)

    monkeypatch.setattr(policies_module, "load_policy_text", counted)
    policies = PolicyDir(policy_dir)
    broken = policy_dir / "demo.yaml"
    broken.write_text("name: demo\nanalysis:\n  interval: soon\n")
    for _ in range(3):
        with pytest.raises(PolicyError, match=r"demo\.yaml:3: analysis\.interval"):
            policies.load("demo")
    assert len(reads) == 1
    broken.write_text(DEMO_POLICY)  # another size: a new version, read again
    assert policies.load("demo").name == policies.load("demo").name == "demo"
    assert len(reads) == 2


@pytest.mark.parametrize("name", ["../demo", "Demo", ".demo", "demo/", "demo\\x", "-demo"])
def test_only_a_policy_name_is_looked_up(policy_dir: Path, name: str) -> None:
    (policy_dir / f"{name.strip('./-')}.yaml").write_text(DEMO_POLICY)
    with pytest.raises(UnknownPolicyError, match="is not a policy name"):
        PolicyDir(policy_dir).load(name)


# -- idempotency keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"platform": "local", "image": "python -m svc --port {port}"},
        {"image": "r.example/checkout:evil"},
        {"images": {"proxy": "r.example/envoy:1"}},
        {"policy": "with-args", "args": {"route": "/admin"}},
        {"canary": 'app="checkout",version="v9"'},
    ],
)
def test_a_key_reused_for_any_other_job_is_refused_without_naming_it(
    intake: Intake, memory_store: MemoryStateStore, change: dict[str, object]
) -> None:
    first = intake.submit(job(idempotency_key="ci-7", image="r.example/checkout:2"), "alice")
    with pytest.raises(InvalidJobError, match="already used in namespace 'shop'") as refused:
        intake.submit(
            job(idempotency_key="ci-7", **{"image": "r.example/checkout:2", **change}), "eve"
        )
    message = str(refused.value)
    assert first.rollout_id not in message and "checkout:2" not in message
    assert len(memory_store.list_rollouts()) == 1


def test_the_same_job_under_its_key_returns_the_same_rollout(
    intake: Intake, queued: Queued
) -> None:
    first = intake.submit(job(idempotency_key="ci-7", args={}), "alice")
    again = intake.submit(
        job(idempotency_key="ci-7", baseline='{app="checkout",version="v1"}'), "bob"
    )
    assert (again.rollout_id, again.created) == (first.rollout_id, False)
    assert len(queued.advance) == 1


def test_a_key_belongs_to_its_namespace(intake: Intake) -> None:
    mine = intake.submit(job(namespace="inj", idempotency_key="deploy-1"), "alice")
    theirs = intake.submit(job(namespace="other", idempotency_key="deploy-1"), "bob")
    assert theirs.created and theirs.rollout_id != mine.rollout_id


def test_a_key_is_forgotten_after_its_window(
    memory_store: MemoryStateStore, policy_dir: Path, clock: FakeClock, queued: Queued
) -> None:
    intake = Intake(memory_store, policy_dir, clock, queued.enqueue, alert_routes={"oncall"})
    assert intake.idempotency_ttl == IDEMPOTENCY_TTL_SECONDS == 86_400
    first = intake.submit(job(idempotency_key="nightly"), "ci")
    clock.advance(IDEMPOTENCY_TTL_SECONDS - 1)
    assert not intake.submit(job(idempotency_key="nightly"), "ci").created
    clock.advance(1)
    later = intake.submit(job(idempotency_key="nightly", version="v3"), "ci")
    assert later.created and later.superseded == first.rollout_id


# -- audit events that are no step -------------------------------------------------------------


def test_record_adds_an_event_stamped_now_and_enqueues_the_new_revision(
    intake: Intake, memory_store: MemoryStateStore, clock: FakeClock, queued: Queued
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id
    clock.advance(7)
    intake.record(rollout_id, RecordEvent("alert_undelivered", "pager is down", {"routes": ["p"]}))
    state, revision = memory_store.load(rollout_id)
    assert (state.updated_at, revision) == (clock(), 2)
    assert queued.advance[-1] == (rollout_id, 2, 0.0)  # the task queued at revision 1 is stale
    last = trail(memory_store, rollout_id)[-1]
    assert (last.kind, last.message, last.at) == ("alert_undelivered", "pager is down", clock())
    with pytest.raises(NotFound, match="no rollout nope"):
        intake.record("nope", RecordEvent("alert_undelivered", "x"))
