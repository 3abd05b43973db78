"""Who may do what: authentication before the body is parsed, roles with least privilege by
default, a rollout outside the token's namespaces answered as an unknown one, the
``Idempotency-Key`` header under the body field's rules, and what the OpenAPI schema says."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from canarist.settings import ApiToken, hash_token
from tests.canarist.test_api import JOB, SECRETS, Api, api, bearer

__all__ = ["api"]  # the fixture

COMMANDS = ["abort", "promote", "pause", "resume", "retry"]
JSON = {"Content-Type": "application/json"}
# Bodies whose answer, were they parsed, would teach the schema's rules.
TELLING_BODIES: list[bytes] = [
    b"{not json",
    b'{"app": 5}',
    b'{"app": "checkout", "replicas": 3}',
    b"[]",
]


@pytest.mark.parametrize("content", TELLING_BODIES)
@pytest.mark.parametrize("path", ["/v1/rollouts", *(f"/v1/rollouts/r1/{k}" for k in COMMANDS)])
def test_without_a_valid_token_every_body_is_401(api: Api, path: str, content: bytes) -> None:
    for auth in ({}, {"Authorization": "Bearer cnr_guessed"}):
        headers = {**JSON, **auth, "Idempotency-Key": "a b"}
        response = api.client.post(path, content=content, headers=headers)
        assert response.status_code == 401, (path, content, response.text)
        assert response.json()["error"] == "unauthorized"
    assert api.store.list_rollouts() == []


@pytest.mark.parametrize("content", TELLING_BODIES)
def test_a_token_without_the_role_is_403_before_its_body_is_read(api: Api, content: bytes) -> None:
    response = api.client.post(
        "/v1/rollouts", content=content, headers={**JSON, **bearer("viewer")}
    )
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == (
        "token 'viewer' lacks the role 'submit' this needs (its roles: read)"
    )


def test_an_entry_without_roles_may_only_read(api: Api) -> None:
    rollout_id = api.submit("alice")
    for path in ("/v1/rollouts", f"/v1/rollouts/{rollout_id}"):
        assert api.client.get(path, headers=bearer("viewer")).status_code == 200
    refused = api.client.post("/v1/rollouts", json=JOB, headers=bearer("viewer"))
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    for kind in COMMANDS:
        response = api.command(rollout_id, kind, who="viewer")
        assert response.status_code == 403, response.text
        assert "lacks the role 'operate'" in response.json()["detail"]
    assert api.store.load(rollout_id).revision == 1
    assert len(api.store.list_rollouts()) == 1


def test_submit_and_operate_are_separate_roles_and_admin_has_both(api: Api) -> None:
    rollout_id = api.submit("ci")
    assert api.client.get(f"/v1/rollouts/{rollout_id}", headers=bearer("ci")).status_code == 200
    refused = api.command(rollout_id, "abort", who="ci")
    assert refused.json()["detail"] == (
        "token 'ci' lacks the role 'operate' this needs (its roles: submit)"
    )
    assert api.command(rollout_id, "abort", who="alice").json()["phase"] == "aborted"
    assert api.command(rollout_id, "retry", who="ops").json()["phase"] == "progressing"
    assert api.submit("ops", app="cart")


def test_a_role_is_checked_before_the_rollout_is_looked_up(api: Api) -> None:
    """A token without the role learns nothing of which ids exist, anywhere."""
    elsewhere = api.submit("ops", namespace="payments")
    mine = api.submit("alice")
    answers = {
        rollout_id: api.command(rollout_id, "abort", who="viewer").json()
        for rollout_id in (elsewhere, mine, "no-such-rollout")
    }
    assert len({str(answer) for answer in answers.values()}) == 1


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("GET", "/report", None),
        *(("POST", f"/{kind}", {"reason": "x"}) for kind in COMMANDS),
    ],
)
def test_a_rollout_outside_the_tokens_namespaces_is_the_404_of_an_unknown_one(
    api: Api, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    hidden = api.submit("ops", namespace="payments")
    unknown = f"{hidden}x"

    def ask(rollout_id: str) -> Any:
        path = f"/v1/rollouts/{rollout_id}{suffix}"
        return api.client.request(method, path, json=body, headers=bearer("alice"))

    answer, expected = ask(hidden), ask(unknown)
    assert (answer.status_code, expected.status_code) == (404, 404), answer.text
    assert answer.text == expected.text.replace(unknown, hidden)
    assert answer.headers.get("content-type") == expected.headers.get("content-type")
    assert api.store.load(hidden).revision == 1


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("a b", "should match pattern"),
        ("ü-key", "should match pattern"),
        ("", "at least 1 character"),
        ("k" * 201, "at most 200 characters"),
    ],
)
def test_the_idempotency_header_obeys_the_body_fields_rules(api: Api, key: str, words: str) -> None:
    as_body = api.client.post(
        "/v1/rollouts", json={**JOB, "idempotency_key": key}, headers=bearer("alice")
    )
    headers: dict[str, Any] = {**bearer("alice"), "Idempotency-Key": key.encode()}
    as_header = api.client.post("/v1/rollouts", json=JOB, headers=headers)
    assert (as_body.status_code, as_header.status_code) == (422, 422), as_header.text
    problems = as_header.json()["problems"]
    assert [problem["field"] for problem in problems] == ["header.Idempotency-Key"]
    assert words in problems[0]["message"]
    assert as_header.json()["detail"].startswith("header.Idempotency-Key: ")
    assert as_body.json()["problems"][0]["message"] == problems[0]["message"]
    assert api.store.list_rollouts() == []


def test_roles_default_to_read_and_are_checked_in_settings() -> None:
    digest = hash_token(SECRETS["viewer"])
    assert ApiToken(name="v", sha256=digest).roles == ["read"]
    admin = ApiToken(name="a", sha256=digest, roles=["admin"])
    assert all(admin.grants(role) for role in ("read", "submit", "operate", "admin"))
    operator = ApiToken(name="o", sha256=digest, roles=["operate"])
    assert (operator.grants("read"), operator.grants("submit")) == (True, False)
    for roles in ([], ["write"]):
        with pytest.raises(ValidationError):
            ApiToken(name="x", sha256=digest, roles=roles)


def test_openapi_documents_400_413_the_roles_and_the_selector_grammar(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    submit = schema["paths"]["/v1/rollouts"]["post"]
    assert {"400", "401", "403", "413", "422", "503"} <= set(submit["responses"])
    for kind in COMMANDS:
        command = schema["paths"][f"/v1/rollouts/{{rollout_id}}/{kind}"]["post"]
        assert {"400", "413", "404"} <= set(command["responses"])
        assert "`operate` role" in command["description"]
    description = submit["description"]
    assert "`submit` role" in description
    for grammar in ('op       = "=" | "!=" | "=~" | "!~"', "label    = [A-Za-z_][A-Za-z0-9_]*"):
        assert grammar in description
    assert "Idempotency-Key" in description
    scheme = next(iter(schema["components"]["securitySchemes"].values()))
    assert "operate" in scheme["description"]
