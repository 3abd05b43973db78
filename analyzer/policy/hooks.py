"""HTTP hooks at points of a rollout: what a policy's ``hooks:`` section says.

    hooks:
      - name: smoke
        point: pre_rollout          # pre_rollout | analysis | confirm_promotion |
        route: smoke-tests          #   post_promotion | post_rollback
        timeout: 10s                # the whole call, retries included
        retries: 2
        metadata: {suite: checkout}

A hook names a route, never a URL: the route's URL, signing secret and headers live in the
service's settings (``CANARIST_HOOK_ROUTES``), as alert routes do. What each point means for the
rollout is the engine's (workers/engine/hooks.py); the call itself is workers/hooks.py's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from analyzer.policy.base import Name, PolicyModel, PolicyWord
from analyzer.policy.durations import Duration

HOOK_ROUTES_SETTING = "CANARIST_HOOK_ROUTES"  # workers/settings.py reads the routes from it
MAX_TIMEOUT = timedelta(seconds=60)
MAX_METADATA = 16


class HookPoint(PolicyWord):
    """Where in a rollout a hook is called, and what its answer decides."""

    PRE_ROLLOUT = "pre_rollout"  # before any traffic moves: a failure aborts
    ANALYSIS = "analysis"  # at every analysis look: a row of the verdict, like a metric
    CONFIRM_PROMOTION = "confirm_promotion"  # before promoting: "no" holds, asked again
    POST_PROMOTION = "post_promotion"  # informational
    POST_ROLLBACK = "post_rollback"  # informational


def _route_name_not_url(value: object) -> object:
    if isinstance(value, str) and "://" in value:
        raise ValueError(
            f"hook routes are names defined in settings ({HOOK_ROUTES_SETTING}), not URLs: "
            f"write `route: smoke-tests` and define its url and secret there; found {value!r}"
        )
    return value


HookRouteName = Annotated[Name, BeforeValidator(_route_name_not_url)]
MetadataText = Annotated[str, StringConstraints(max_length=256)]


class HookSpec(PolicyModel):
    """One HTTP hook: POSTed a signed JSON body at its point of the rollout."""

    model_config = ConfigDict(title="Hook")  # its name in the schema and messages

    name: Name
    point: HookPoint
    route: HookRouteName = Field(description="a hook route name defined in the settings")
    timeout: Duration = Field(
        default=timedelta(seconds=10), description="the whole call, its retries included"
    )
    retries: int = Field(default=2, ge=0, le=5, description="more tries within the timeout")
    critical: bool = Field(
        default=True,
        description="analysis hooks: a FAIL fails the look (and an inconclusive answer holds a "
        "PASS back); false shows the answer in the evidence without counting it",
    )
    metadata: dict[Name, MetadataText] = Field(
        default_factory=dict, description="small string map passed along in the body"
    )

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, timeout: timedelta) -> timedelta:
        if not timedelta(0) < timeout <= MAX_TIMEOUT:
            raise ValueError(f"timeout must be above 0s and at most {MAX_TIMEOUT.seconds}s")
        return timeout

    @field_validator("metadata")
    @classmethod
    def _small(cls, metadata: dict[str, str]) -> dict[str, str]:
        if len(metadata) > MAX_METADATA:
            raise ValueError(f"metadata holds at most {MAX_METADATA} keys")
        return metadata


def hook_problems(hooks: list[HookSpec], metric_names: set[str]) -> str | None:
    """Hooks share one namespace with each other and with metrics (a hook's answer is a row of
    the verdict beside the metrics): the first clash, or None."""
    seen: set[str] = set()
    for hook in hooks:
        if hook.name in seen:
            return f"two hooks are named {hook.name!r}: hook names must be unique"
        if hook.name in metric_names:
            return f"hook {hook.name!r} has a metric's name: a verdict row would be ambiguous"
        seen.add(hook.name)
    return None


def hooks_at(hooks: list[HookSpec], point: HookPoint) -> list[HookSpec]:
    """The policy's hooks of one point, in policy order."""
    return [hook for hook in hooks if hook.point is point]
