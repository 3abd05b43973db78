"""The job an opted-in Deployment asks for, read from its annotations (no cluster needed)."""

from __future__ import annotations

import copy
from typing import Any

from workers.job import RolloutJob
from workers.platforms.kubernetes.opt_in import CanaryRequest, Refusal, job_for


def deployment(**notes: str) -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"app": "checkout", "version": "v1"}},
        "spec": {"containers": [{"name": "checkout", "image": "shop/checkout:v1"}]},
    }
    return {
        "metadata": {"name": "checkout", "namespace": "shop", "annotations": notes},
        "spec": {"paused": True, "template": template},
    }


def changed(found: dict[str, Any], version: str, image: str) -> dict[str, Any]:
    template = copy.deepcopy(found["spec"]["template"])
    template["metadata"]["labels"]["version"] = version
    template["spec"]["containers"][0]["image"] = image
    return template


def test_the_selector_templates_are_rendered_for_each_side() -> None:
    found = deployment(
        **{
            "canarist.dev/policy": "checkout-canary",
            "canarist.dev/baseline-selector": 'service="{app}",track="{version}",x=~"a{2}"',
            "canarist.dev/canary-selector": 'service="{app}",track="{version}",x=~"a{2}"',
        }
    )
    new = changed(found, "v2", "shop/checkout:v2")
    request = job_for(found, new, found["spec"]["template"], "version", None)
    assert isinstance(request, CanaryRequest)
    job = RolloutJob.model_validate(vars(request))
    assert job.baseline == 'service="checkout",track="v1",x=~"a{2}"'
    assert job.canary == 'service="checkout",track="v2",x=~"a{2}"'
    assert (job.version, job.images, job.platform) == (
        "v2",
        {"checkout": "shop/checkout:v2"},
        "kubernetes",
    )


def test_one_template_on_one_lane_is_one_key() -> None:
    found = deployment(**{"canarist.dev/policy": "p"})
    running = found["spec"]["template"]
    new = changed(found, "v2", "shop/checkout:v2")
    first = job_for(found, new, running, "version", "checkout-aaa")
    again = job_for(found, copy.deepcopy(new), running, "version", "checkout-aaa")
    other = job_for(found, changed(found, "v2", "shop/checkout:v2b"), running, "version", None)
    back = job_for(found, new, running, "version", "checkout-bbb")  # A, B, then A again
    assert isinstance(first, CanaryRequest) and isinstance(again, CanaryRequest)
    assert isinstance(other, CanaryRequest) and isinstance(back, CanaryRequest)
    assert first.idempotency_key == again.idempotency_key
    assert len({first.idempotency_key, other.idempotency_key, back.idempotency_key}) == 3
    assert first.idempotency_key.startswith("gitops/shop/checkout/")


def test_what_cannot_name_two_versions_is_refused_with_a_reason() -> None:
    found = deployment(**{"canarist.dev/policy": "p", "canarist.dev/version-label": "track"})
    running = found["spec"]["template"]
    mismatch = job_for(found, changed(found, "v2", "i:2"), running, "version", None)
    assert isinstance(mismatch, Refusal) and mismatch.reason == "CanaryPolicyMismatch"
    found = deployment(**{"canarist.dev/policy": "p"})
    same = job_for(found, changed(found, "v1", "i:2"), running, "version", None)
    assert isinstance(same, Refusal) and same.reason == "CanaryVersionUnchanged"
    unlabelled = copy.deepcopy(running)
    del unlabelled["metadata"]["labels"]["version"]
    missing = job_for(found, changed(found, "v2", "i:2"), unlabelled, "version", None)
    assert isinstance(missing, Refusal) and missing.reason == "CanaryVersionMissing"
