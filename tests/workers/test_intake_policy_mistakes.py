"""A job whose policy holds a PromQL or router mistake is refused at submit, naming the policy's
file, line and field, before a rollout exists: the checks of ``canarist policy validate``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.conftest import DEMO_POLICY, job
from workers.errors import InvalidJobError
from workers.intake import Intake
from workers.store import MemoryStateStore

TARGETED = """\
strategy:
  type: targeted
  match:
    - header: {name: x-beta, value: "yes"}
    - cookie: {name: beta, value: "yes"}
  analyze: {duration: 10s}
  steps:
    - set_weight: 100
traffic: {router: nginx_ingress}
"""


def test_a_query_that_does_not_parse_refuses_the_job_at_its_line(
    intake: Intake, policy_dir: Path, memory_store: MemoryStateStore
) -> None:
    broken = DEMO_POLICY.replace("name: demo", "name: unparsed").replace(
        '{{ selector }}, code=~"5.." }[{{ interval }}]))',
        '{{ selector }}, code=~"5.." }[{{ interval }}])',
    )
    (policy_dir / "unparsed.yaml").write_text(broken)
    with pytest.raises(InvalidJobError, match=r"unparsed.yaml:14: metrics\[0\].errors: PromQL "):
        intake.submit(job(policy="unparsed"), "alice")
    assert memory_store.list_rollouts() == []


def test_an_audience_the_router_cannot_route_refuses_the_job_at_its_rule(
    intake: Intake, policy_dir: Path
) -> None:
    text = DEMO_POLICY.replace("name: demo", "name: cookie")
    text = text[: text.index("strategy:")] + TARGETED
    (policy_dir / "cookie.yaml").write_text(text)
    with pytest.raises(
        InvalidJobError, match=r"cookie.yaml:22: strategy.match\[1\].cookie.value: ingress-nginx"
    ):
        intake.submit(job(policy="cookie"), "alice")
