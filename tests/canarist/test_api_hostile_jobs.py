"""Hostile rollout jobs through the HTTP door: each is a short 422 (or 404) naming the field,
never a 500, and never a body that echoes the input or the server's paths. (The inputs stay
small enough for any request-size limit of the API: the bounds under test are the job's own.)"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from canarist.api import create_app
from tests.canarist.test_api import JOB, POLICIES, Clock, api_settings, bearer
from tests.workers.test_intake_checks import BARE_ARG_POLICY
from workers.intake import Intake
from workers.store import MemoryStateStore


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    shutil.copy(POLICIES / "default-canary.yaml", tmp_path)
    (tmp_path / "bare.yaml").write_text(BARE_ARG_POLICY)
    paging = (POLICIES / "default-canary.yaml").read_text()
    paging = paging.replace("name: default-canary", "name: paging")
    (tmp_path / "paging.yaml").write_text(paging.replace("  - oncall", "  - oncall\n  - pager"))
    return tmp_path


@pytest.fixture
def client(policy_dir: Path) -> Iterator[TestClient]:
    intake = Intake(
        MemoryStateStore(), policy_dir, Clock(), lambda *a: None, alert_routes={"oncall"}
    )
    with TestClient(create_app(api_settings(), intake), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("change", "status", "field", "said"),
    [
        ({"baseline": 'app="a\u0001b"'}, 422, "baseline", "control character 0x01"),
        ({"canary": "x" * 5_000}, 422, "canary", "at most 1024 characters"),
        ({"args": {f"a{i}": "1" for i in range(1_000)}}, 422, "args", "at most 32 args"),
        ({"policy": "bare", "args": {"window": "3s]) or vector(1) #"}}, 422, None, "window="),
        ({"policy": "paging"}, 422, None, "'pager'"),
        ({"policy": "nope"}, 404, None, "no policy 'nope'"),
    ],
)
def test_a_hostile_job_gets_a_short_clean_refusal(
    client: TestClient,
    policy_dir: Path,
    change: dict[str, Any],
    status: int,
    field: str | None,
    said: str,
) -> None:
    response = client.post("/v1/rollouts", json={**JOB, **change}, headers=bearer("alice"))
    assert response.status_code == status, response.text
    body = response.json()
    assert said in body["detail"]
    if field is not None:
        assert [problem["field"] for problem in body["problems"]] == [field]
    assert len(response.content) < 2_000
    assert str(policy_dir) not in response.text
