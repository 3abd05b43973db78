"""The server's policies, read-only: what a rollout submitted now would run under.

``GET /v1/policies`` lists every file of the policy directory (a ConfigMap on Kubernetes) with
its digest, strategy, metric names and modification time; a file that does not load is listed
with its error, never hidden. ``GET /v1/policies/{name}`` adds the YAML as the server reads it.
Both read through intake's ``PolicyDir``, the one cache of policy files, so they show exactly
what a submission would pin (workers/policies.py).

Both need the ``read`` role. Policies belong to no namespace: any token that may read sees
every policy, whatever its namespaces (the README says so).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from canarist.api import models
from canarist.api.auth import AuthenticatedRoute, Reader
from canarist.api.routes import services
from workers.errors import UnknownPolicyError
from workers.policies import PolicyDir, PolicyFile

POLICIES = "/v1/policies"
_WHY = {
    401: "no bearer token, or an invalid one",
    403: "the token lacks the read role",
    404: "no policy of that name in the server's policy directory",
    503: "the state store is unreachable or too slow; retry later",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": models.ErrorBody, "description": _WHY[status]} for status in statuses}


router = APIRouter(route_class=AuthenticatedRoute)


@router.get(
    POLICIES,
    response_model=models.PolicyList,
    responses=_errors(401, 403),
    summary="The server's policies: name, digest, strategy, metrics, modified time",
    description="Needs the `read` role; policies belong to no namespace. A policy that does not "
    "load is listed with its error.",
    tags=["policies"],
)
def list_policies(request: Request, caller: Reader) -> models.PolicyList:
    directory = services(request).intake.policies
    found = [_readable(directory, name) for name in directory.names()]
    return models.PolicyList(policies=[_summary(read) for read in found if read is not None])


@router.get(
    POLICIES + "/{name}",
    response_model=models.PolicyDetail,
    responses=_errors(401, 403, 404),
    summary="One policy: its YAML as the server reads it, its digest and summary",
    description="Needs the `read` role. The digest is sha256 of the file's bytes: a rollout "
    "submitted now pins this very text.",
    tags=["policies"],
)
def get_policy(name: str, request: Request, caller: Reader) -> models.PolicyDetail:
    read = services(request).intake.policies.read(name)  # UnknownPolicyError: the 404
    return models.PolicyDetail(**_summary(read).model_dump(), text=read.text)


def _readable(directory: PolicyDir, name: str) -> PolicyFile | None:
    try:
        return directory.read(name)
    except UnknownPolicyError:  # removed between the listing and the read
        return None


def _summary(read: PolicyFile) -> models.PolicySummary:
    policy, error = read.policy, read.error
    problems = None
    if error is not None:
        # The file's name, not the server's directory, as every refusal of a policy says.
        problems = "\n".join(problem.render(Path(error.source).name) for problem in error.problems)
    return models.PolicySummary(
        name=read.name,
        digest=read.digest,
        modified_at=datetime.fromtimestamp(read.modified_at, tz=UTC),
        strategy=policy.strategy.type.value if policy is not None else None,
        metrics=[metric.name for metric in policy.metrics] if policy is not None else [],
        error=problems,
    )
