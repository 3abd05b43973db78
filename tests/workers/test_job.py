"""The rollout job as hostile callers write it: every field bounded, every refusal a short
validation error naming the field and the limit (never the input echoed back, never another
exception), and a digest that tells any two different jobs apart."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.workers.conftest import job
from workers.job import (
    MAX_ARG_VALUE_CHARS,
    MAX_ARGS,
    MAX_CONTAINERS,
    MAX_MATCHERS,
    MAX_SELECTOR_CHARS,
)

HUGE = "x" * 10_000_000
MAX_MESSAGE_CHARS = 2_000


def refused(**fields: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        job(**fields)
    return caught.value


@pytest.mark.parametrize("field", ["baseline", "canary"])
def test_a_control_character_in_a_selector_is_a_validation_error(field: str) -> None:
    error = refused(**{field: 'app="a\u0001b",version="v9"'})
    (problem,) = error.errors()
    assert problem["loc"] == (field,)
    assert "control character 0x01" in problem["msg"]


def test_an_escaped_newline_in_a_selector_is_still_fine() -> None:
    assert job(baseline='app="a\\nb"').baseline == 'app="a\\nb"'


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        ({"baseline": HUGE}, "baseline", f"at most {MAX_SELECTOR_CHARS} characters"),
        ({"canary": HUGE}, "canary", f"at most {MAX_SELECTOR_CHARS} characters"),
        ({"image": HUGE}, "image", "at most 512 characters"),
        ({"platform": HUGE}, "platform", "at most 63 characters"),
        ({"version": HUGE}, "version", "pattern"),
        ({"idempotency_key": HUGE}, "idempotency_key", "at most 200 characters"),
        ({"args": {f"a{i}": "1" for i in range(100_000)}}, "args", f"at most {MAX_ARGS} args"),
        ({"args": {"route": HUGE}}, "args", f"at most {MAX_ARG_VALUE_CHARS} characters"),
        ({"args": {HUGE: "1"}}, "args", "is not a policy arg name"),
        ({"args": {"route": "/a\u0000"}}, "args", "without control characters"),
        (
            {"images": {f"c{i}": "r.example/c:1" for i in range(MAX_CONTAINERS + 1)}},
            "images",
            f"at most {MAX_CONTAINERS} containers",
        ),
        ({"images": {"proxy": HUGE}}, "images", "of container 'proxy' is not an image"),
        (
            {"baseline": ",".join(f'l{i}="v"' for i in range(MAX_MATCHERS + 1))},
            "baseline",
            f"at most {MAX_MATCHERS} label matchers",
        ),
        ({"baseline": "app='" + '"' * 600 + "'"}, "baseline", "once normalised"),
    ],
)
def test_every_field_is_bounded_with_a_short_error_naming_field_and_limit(
    fields: dict[str, Any], field: str, limit: str
) -> None:
    error = refused(**fields)
    problems = error.errors(include_input=False)
    assert len(problems) == 1, problems
    assert problems[0]["loc"][0] == field
    assert limit in problems[0]["msg"]
    assert len(problems[0]["msg"]) < 300
    assert len(str(error)) < MAX_MESSAGE_CHARS  # what the Celery door and logs print


def test_jobs_at_the_limits_are_accepted() -> None:
    valid = job(
        args={f"a{i}": "v" * MAX_ARG_VALUE_CHARS for i in range(MAX_ARGS)},
        images={f"c{i}": "r.example/c:1" for i in range(MAX_CONTAINERS)},
        baseline=",".join(f'l{i}="v"' for i in range(MAX_MATCHERS)),
    )
    assert len(valid.args) == MAX_ARGS and len(valid.images) == MAX_CONTAINERS


def test_the_digest_covers_the_whole_normalised_job() -> None:
    base = job(image="r.example/checkout:2")
    same = job(image="r.example/checkout:2", baseline='{ app = "checkout", version = "v1" }')
    assert same.digest() == base.digest()  # the selector normalises to the same matchers
    assert job(image="r.example/checkout:2", idempotency_key="k").digest() == base.digest()
    different = [
        job(image="r.example/checkout:3"),
        job(image="r.example/checkout:2", platform="kubernetes"),
        job(image="r.example/checkout:2", args={"route": "/a"}),
        job(image="r.example/checkout:2", images={"proxy": "r.example/envoy:1"}),
        job(image="r.example/checkout:2", version="v3"),
        job(image="r.example/checkout:2", namespace="other"),
    ]
    digests = {base.digest(), *(other.digest() for other in different)}
    assert len(digests) == 1 + len(different)
