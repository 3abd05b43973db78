"""The HTTP API over real intake and an in-memory store: tokens and scopes, errors, idempotency,
commands recorded with the caller's name, and the shapes of the answers.

A rollout is moved along between requests by ``Worker``: what the Celery task does on a wake-up
(load, observe, ``engine.step``, save), without Celery, so commands meet rollouts in the phases
where they apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from analyzer.policy import load_policy
from analyzer.verdict import Outcome
from canarist.api import create_app
from canarist.settings import AlertRoute, ApiToken, Settings, hash_token
from tests.workers.rollout_driver import verdict
from workers.actions import (
    AnalysisResult,
    Observation,
    PlatformFailed,
    PlatformReady,
    RecordEvent,
    Tick,
)
from workers.engine import step
from workers.intake import Intake
from workers.store import MemoryStateStore

POLICIES = Path(__file__).parents[2] / "policies"
NOW = 1_750_000_000.0
SECRETS = {
    "alice": "cnr_alice-shop-only",
    "ops": "cnr_ops-everywhere",
    "bob": "cnr_bob-payments",
    "viewer": "cnr_viewer-shop-read-only",
    "ci": "cnr_ci-shop-submit-only",
}
SCOPES = {"alice": ["shop"], "ops": ["*"], "bob": ["payments"], "viewer": ["shop"], "ci": ["shop"]}
# viewer's entry names no roles, so it gets the default: read only.
ROLES: dict[str, list[str]] = {
    "alice": ["submit", "operate"],
    "ops": ["admin"],
    "bob": ["submit", "operate"],
    "ci": ["submit"],
}
JOB: dict[str, Any] = {
    "app": "checkout",
    "namespace": "shop",
    "version": "v2",
    "image": "registry.example/checkout:v2",
    "policy": "default-canary",
    "args": {},
    "baseline": 'app="checkout",version="v1"',
    "canary": 'app="checkout",version="v2"',
}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


def token_entry(name: str) -> dict[str, Any]:
    """The settings entry of the test token ``name``, as an operator would write it."""
    entry: dict[str, Any] = {
        "name": name,
        "sha256": hash_token(SECRETS[name]),
        "namespaces": SCOPES[name],
    }
    if name in ROLES:
        entry["roles"] = ROLES[name]
    return entry


def api_settings() -> Settings:
    """The shipped policies page the route ``oncall``: the settings define it (never used)."""
    tokens = [ApiToken.model_validate(token_entry(name)) for name in SECRETS]
    oncall = AlertRoute(type="alertmanager", url="http://127.0.0.1:9/unused")
    return Settings(api_tokens=tokens, policy_dir=POLICIES, alert_routes={"oncall": oncall})


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    client: TestClient
    store: MemoryStateStore
    clock: Clock
    enqueued: list[tuple[Any, ...]] = field(default_factory=list)

    def submit(self, who: str = "alice", **changes: Any) -> str:
        response = self.client.post("/v1/rollouts", json={**JOB, **changes}, headers=bearer(who))
        assert response.status_code == 202, response.text
        rollout_id: str = response.json()["id"]
        return rollout_id

    def command(self, rollout_id: str, kind: str, who: str = "alice", **body: Any) -> Any:
        return self.client.post(
            f"/v1/rollouts/{rollout_id}/{kind}", json=body or None, headers=bearer(who)
        )


class Worker:
    """The Celery task's wake-up without Celery: observe, step, save (compare-and-set).

    The platform is ready for whatever is awaited, unless told that it ``fails``."""

    def __init__(self, store: MemoryStateStore, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def wake(
        self, rollout_id: str, outcome: Outcome | None = None, fails: str | None = None
    ) -> None:
        stored = self.store.load(rollout_id)
        state, policy = stored.state, load_policy(POLICIES / f"{stored.state.policy}.yaml")
        if state.next_due_at is not None:
            self.clock.now = max(self.clock.now, state.next_due_at)
        now = self.clock.now
        request = state.analysis_due(now)
        observation: Observation
        if state.awaiting is not None and fails is not None:
            observation = PlatformFailed(fails, state.awaiting)
        elif state.awaiting is not None:
            observation = PlatformReady(state.awaiting)
        elif request is not None and outcome is not None:
            observation = AnalysisResult(request, verdict(policy, outcome))
        else:
            observation = Tick()
        new, actions = step(state, policy, observation, now)
        events = [action for action in actions if isinstance(action, RecordEvent)]
        self.store.save(new, stored.revision, events=events)


@pytest.fixture
def api() -> Iterator[Api]:
    store, clock = MemoryStateStore(), Clock()
    enqueued: list[tuple[Any, ...]] = []
    intake = Intake(
        store,
        POLICIES,
        clock,
        lambda *args, **kwargs: enqueued.append(args),
        alert_routes={"oncall"},
    )
    with TestClient(create_app(api_settings(), intake)) as client:
        yield Api(client, store, clock, enqueued)


# -- authentication and scopes ----------------------------------------------------------------

PROTECTED = [
    ("POST", "/v1/rollouts"),
    ("GET", "/v1/rollouts"),
    ("GET", "/v1/rollouts/r1"),
    *(("POST", f"/v1/rollouts/r1/{kind}") for kind in ("abort", "promote", "pause", "resume")),
    ("POST", "/v1/rollouts/r1/retry"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_rollout_route_refuses_a_missing_or_invalid_token(
    api: Api, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer cnr_guessed"}, {"Authorization": "Basic eDp5"}):
        response = api.client.request(method, path, json=JOB, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert api.store.list_rollouts() == []


def test_a_token_is_a_hash_in_settings_never_the_token() -> None:
    settings = api_settings()
    dumped = settings.model_dump_json()
    assert all(secret not in dumped for secret in SECRETS.values())
    assert hash_token(SECRETS["alice"]) in dumped
    assert settings.token_for(SECRETS["alice"]) == settings.api_tokens[0]
    with pytest.raises(ValidationError):
        ApiToken(name="eve", sha256=SECRETS["alice"])  # a token where the hash belongs


def test_submit_outside_the_tokens_namespaces_is_403_and_stores_nothing(api: Api) -> None:
    response = api.client.post(
        "/v1/rollouts", json={**JOB, "namespace": "payments"}, headers=bearer("alice")
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "payments" in response.json()["detail"]
    assert api.store.list_rollouts() == []
    assert api.enqueued == []


@pytest.mark.parametrize("kind", ["abort", "promote", "pause", "resume", "retry"])
def test_commands_on_another_namespaces_rollout_are_404_and_change_nothing(
    api: Api, kind: str
) -> None:
    rollout_id = api.submit("ops", namespace="payments")
    before = api.store.events(rollout_id)
    response = api.command(rollout_id, kind, who="alice")
    assert response.status_code == 404, response.text
    assert api.store.events(rollout_id) == before
    assert api.store.load(rollout_id).revision == 1


def test_reading_is_scoped_too(api: Api) -> None:
    shop, payments = api.submit("ops"), api.submit("ops", namespace="payments", app="ledger")
    assert api.client.get(f"/v1/rollouts/{payments}", headers=bearer("alice")).status_code == 404
    assert api.client.get(f"/v1/rollouts/{shop}", headers=bearer("alice")).status_code == 200
    listed = api.client.get("/v1/rollouts", headers=bearer("alice")).json()["rollouts"]
    assert [rollout["id"] for rollout in listed] == [shop]
    everything = api.client.get("/v1/rollouts", headers=bearer("ops")).json()["rollouts"]
    assert {rollout["id"] for rollout in everything} == {shop, payments}
    refused = api.client.get("/v1/rollouts?namespace=payments", headers=bearer("alice"))
    assert refused.status_code == 403
    only = api.client.get("/v1/rollouts?namespace=payments", headers=bearer("bob")).json()
    assert [rollout["id"] for rollout in only["rollouts"]] == [payments]


def test_another_namespaces_many_rollouts_do_not_crowd_a_scoped_listing_out(api: Api) -> None:
    ledger = api.submit("bob", namespace="payments", app="ledger")
    for number in range(101):  # more than a listing holds
        api.clock.now += 1
        api.submit("ops", app=f"shop-{number}")
    listed = api.client.get("/v1/rollouts", headers=bearer("bob")).json()["rollouts"]
    assert [rollout["id"] for rollout in listed] == [ledger]


# -- bad requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({k: v for k, v in JOB.items() if k != "namespace"}, "namespace", "required"),
        ({**JOB, "replicas": 3}, "replicas", "unknown field"),
        ({**JOB, "args": {"route": 5}}, "args.route", "string"),
        ({**JOB, "version": ["v2"]}, "version", "string"),
        ({**JOB, "platform": "mars"}, "platform", "unknown platform 'mars'"),
        ({**JOB, "canary": JOB["baseline"]}, "body", "baseline and canary select the same"),
    ],
)
def test_a_bad_body_is_422_naming_the_field_and_why(
    api: Api, body: dict[str, Any], field: str, words: str
) -> None:
    response = api.client.post("/v1/rollouts", json=body, headers=bearer("alice"))
    assert response.status_code == 422
    answer = response.json()
    assert answer["error"] == "invalid_request"
    problem = next(p for p in answer["problems"] if p["field"] == field)
    assert words in problem["message"].lower()
    assert f"{field}: " in answer["detail"]
    assert api.store.list_rollouts() == []


def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    response = api.client.post(
        "/v1/rollouts",
        content=b"app=checkout",
        headers={**bearer("alice"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert response.json()["detail"].startswith("the body is not valid JSON")
    assert api.store.list_rollouts() == []


def test_promote_full_must_be_a_boolean(api: Api) -> None:
    rollout_id = api.submit()
    response = api.command(rollout_id, "promote", full="sometimes")
    assert response.status_code == 422
    assert response.json()["problems"][0]["field"] == "full"
    assert api.store.load(rollout_id).revision == 1


def test_an_unknown_policy_is_404(api: Api) -> None:
    response = api.client.post(
        "/v1/rollouts", json={**JOB, "policy": "no-such-policy"}, headers=bearer("alice")
    )
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_policy"
    assert "no-such-policy" in response.json()["detail"]
    assert api.store.list_rollouts() == []


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), *(("POST", f"/{k}") for k in ("abort", "promote", "retry"))]
)
def test_an_unknown_rollout_is_404(api: Api, method: str, suffix: str) -> None:
    response = api.client.request(method, f"/v1/rollouts/nope{suffix}", headers=bearer("ops"))
    assert response.status_code == 404
    assert response.json()["error"] == "rollout_not_found"
    assert "nope" in response.json()["detail"]


# -- idempotency ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["header", "body"])
def test_the_same_idempotency_key_returns_the_same_rollout(api: Api, where: str) -> None:
    def send() -> Any:
        if where == "header":
            return api.client.post(
                "/v1/rollouts", json=JOB, headers={**bearer("alice"), "Idempotency-Key": "ci-77"}
            )
        return api.client.post(
            "/v1/rollouts", json={**JOB, "idempotency_key": "ci-77"}, headers=bearer("alice")
        )

    first, second = send(), send()
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] == second.json()["id"]
    assert (first.json()["created"], second.json()["created"]) == (True, False)
    assert second.headers["Location"] == f"/v1/rollouts/{first.json()['id']}"
    assert len(api.store.list_rollouts()) == 1
    assert len(api.enqueued) == 1


def test_header_and_body_keys_must_agree(api: Api) -> None:
    response = api.client.post(
        "/v1/rollouts",
        json={**JOB, "idempotency_key": "one"},
        headers={**bearer("alice"), "Idempotency-Key": "two"},
    )
    assert response.status_code == 422
    assert "idempotency_key" in response.json()["detail"]
    assert api.store.list_rollouts() == []


def test_a_key_reused_for_another_job_is_refused_not_replayed(api: Api) -> None:
    headers = {**bearer("ops"), "Idempotency-Key": "shared"}
    first = api.client.post("/v1/rollouts", json=JOB, headers=headers)
    again = api.client.post("/v1/rollouts", json={**JOB, "version": "v3"}, headers=headers)
    assert again.status_code == 422
    assert again.json()["error"] == "invalid_job"
    assert "idempotency key" in again.json()["detail"]
    assert [stored.state.id for stored in api.store.list_rollouts()] == [first.json()["id"]]


# -- commands ---------------------------------------------------------------------------------


def _progressing(api: Api) -> str:
    """A rollout past its first stage, in the analysis stage that follows it."""
    worker, rollout_id = Worker(api.store, api.clock), api.submit()
    worker.wake(rollout_id)  # pending -> progressing: the first stage asks the platform
    worker.wake(rollout_id)  # the platform is ready: the analysis stage starts
    return rollout_id


def _recorded(api: Api, rollout_id: str, kind: str) -> list[dict[str, Any]]:
    events = api.client.get(f"/v1/rollouts/{rollout_id}", headers=bearer("alice")).json()["events"]
    said = f"{kind} by alice"
    return [e for e in events if said in e["message"] and e["kind"] != "command_ignored"]


def test_every_command_is_recorded_with_the_tokens_name(api: Api) -> None:
    rollout_id = _progressing(api)
    for kind, phase in [("pause", "paused"), ("resume", "progressing"), ("abort", "aborting")]:
        response = api.command(rollout_id, kind)
        assert response.status_code == 202, response.text
        assert response.json()["phase"] == phase
    Worker(api.store, api.clock).wake(rollout_id)  # the rollback is done
    assert api.store.load(rollout_id).state.phase.value == "aborted"
    assert api.command(rollout_id, "retry").json()["phase"] == "progressing"
    for kind in ("pause", "resume", "abort", "retry"):
        recorded = _recorded(api, rollout_id, kind)
        assert recorded, f"no event records {kind} by alice"
        assert recorded[0]["actor"] == "alice"


def test_a_promote_is_recorded_with_the_tokens_name(api: Api) -> None:
    rollout_id = _progressing(api)
    answer = api.command(rollout_id, "promote").json()
    assert (answer["phase"], answer["stage_index"]) == ("progressing", 2)
    recorded = _recorded(api, rollout_id, "promote")
    assert recorded, "the skipped stage is recorded"
    assert "promote by alice" in recorded[0]["message"]


def test_a_stage_skipping_promote_names_its_actor_in_the_actor_field(api: Api) -> None:
    rollout_id = _progressing(api)
    api.command(rollout_id, "promote")
    assert [event["actor"] for event in _recorded(api, rollout_id, "promote")] == ["alice"]


def test_promote_full_skips_every_remaining_stage(api: Api) -> None:
    rollout_id = _progressing(api)
    answer = api.command(rollout_id, "promote", full=True).json()
    assert answer["phase"] == "promoting"
    recorded = _recorded(api, rollout_id, "promote")
    assert [(e["message"].split(":")[0], e["actor"]) for e in recorded] == [("promoting", "alice")]
    assert "full promote by alice" in recorded[0]["message"]


def test_a_command_that_does_not_apply_is_409_and_still_recorded(api: Api) -> None:
    rollout_id = api.submit()
    response = api.command(rollout_id, "resume", reason="try it")
    assert response.status_code == 409
    assert response.json()["error"] == "not_applicable"
    assert response.json()["detail"].startswith("resume by alice: try it does not apply")
    last = api.store.events(rollout_id)[-1]
    assert (last.kind, last.actor) == ("command_ignored", "alice")
    assert response.json() == {
        "error": "not_applicable",
        "detail": "resume by alice: try it does not apply: the rollout is pending",
        "problems": [],
    }
    assert response.json()["detail"] == last.message
    assert api.store.load(rollout_id).state.phase.value == "pending"
    applied = api.command(rollout_id, "abort")  # the refusal before is not this command's
    assert (applied.status_code, applied.json()["phase"]) == (202, "aborted")


# -- answers ----------------------------------------------------------------------------------


def test_submit_answers_202_with_the_id_and_where_to_follow_it(api: Api) -> None:
    response = api.client.post("/v1/rollouts", json=JOB, headers=bearer("alice"))
    assert response.status_code == 202
    answer = response.json()
    assert set(answer) == {"id", "created", "superseded", "url"}
    assert answer["url"] == response.headers["Location"] == f"/v1/rollouts/{answer['id']}"
    again = api.client.post("/v1/rollouts", json={**JOB, "version": "v3"}, headers=bearer("alice"))
    assert again.json()["superseded"] == answer["id"]


def test_get_one_rollout_shows_its_stage_weight_verdict_evidence_and_events(api: Api) -> None:
    worker, rollout_id = Worker(api.store, api.clock), api.submit()
    for _ in range(50):
        if api.store.load(rollout_id).state.phase.terminal:
            break
        worker.wake(rollout_id, Outcome.FAIL)
    detail = api.client.get(f"/v1/rollouts/{rollout_id}", headers=bearer("alice")).json()
    assert detail["phase"] == "aborted"
    assert detail["terminal"] is True
    assert detail["stage_count"] == 7
    assert detail["stage_label"]
    assert detail["abort_reason"].endswith("(1 FAIL look(s), failure_limit 0)")
    assert detail["args"] == {}
    assert detail["baseline"] == JOB["baseline"]
    assert (detail["version"], detail["image"], detail["platform"]) == (
        "v2",
        JOB["image"],
        "observe",
    )
    last = detail["last_verdict"]
    assert last["outcome"] == "fail"
    metrics = last["evidence"]["metrics"]
    assert {metric["name"] for metric in metrics} == {"error-ratio", "latency", "memory"}
    assert all(metric["judgement"]["outcome"] == "fail" for metric in metrics)
    kinds = [event["kind"] for event in detail["events"]]
    assert kinds[-1] == "phase"
    assert {"stage", "platform_ready"} <= set(kinds)
    assert all(event["at"].endswith("Z") for event in detail["events"])


def test_list_shows_summaries_newest_first(api: Api) -> None:
    first = api.submit()
    api.clock.now += 60
    second = api.submit(app="cart")
    listed = api.client.get("/v1/rollouts", headers=bearer("alice")).json()["rollouts"]
    assert [rollout["id"] for rollout in listed] == [second, first]
    summary = listed[0]
    assert "events" not in summary
    assert summary["phase"] == "pending"
    assert summary["canary_weight"] == 0
    assert summary["stage_index"] == 0
    assert summary["last_verdict"] is None
