"""The root of the policy language: one YAML file an SRE writes and reviews.

    name / description / owner       who the policy is for and who answers for it
    args                             values a rollout job must (or may) give its queries
    analysis                         how often to look, error rates, limits and scores
    metrics                          what to compare between the versions (see metrics.py)
    strategy                         how the release moves forward (see strategy.py)
    traffic                          which router carries the traffic (see traffic.py)
    alerts                           names of alert routes configured in the service's settings
    hooks                            HTTP hooks at points of the rollout (see hooks.py)

Cross-field rules live in checks.py; they run here so no invalid Policy object can exist.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from analyzer.errors import PolicyProblem
from analyzer.policy.base import Name, PolicyModel
from analyzer.policy.checks import policy_problems
from analyzer.policy.durations import Duration
from analyzer.policy.hooks import HookSpec, hook_problems
from analyzer.policy.metrics import Metric
from analyzer.policy.percent import AS_FRACTION, AS_PERCENT
from analyzer.policy.strategy import Strategy
from analyzer.policy.traffic import TrafficSpec

DEFAULT_ALPHA = 0.01
LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"  # a Prometheus label name
ALERT_ROUTES_SETTING = "CANARIST_ALERT_ROUTES"  # workers/settings.py reads the routes from it


def url_instead_of_route(value: Any) -> str | None:
    """What to say when ``alerts:`` is given a URL: the most natural thing to write there, and
    never what it takes (a URL and its credentials belong in the service's settings)."""
    if isinstance(value, str) and re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://|^www\.", value.strip()):
        return (
            f"alert routes are names defined in settings ({ALERT_ROUTES_SETTING} or the "
            f"settings file's alert_routes), not URLs: write `alerts: [oncall]` and define "
            f"oncall's url there; found {value!r}"
        )
    return None


def _route_name_not_url(value: Any) -> Any:
    message = url_instead_of_route(value)
    if message is not None:
        raise ValueError(message)
    return value


AlertRouteName = Annotated[Name, BeforeValidator(_route_name_not_url)]


class Arg(PolicyModel):
    """A named value the rollout job supplies to the templates (e.g. a route or a quantile)."""

    name: Name
    description: str = ""
    default: str | None = Field(default=None, description="used when the job gives no value")


class Analysis(PolicyModel):
    interval: Duration = Field(default=timedelta(minutes=1), description="how often to look")
    begin_after: Duration = Field(
        default=timedelta(0), description="warm-up after each weight change, not analysed"
    )
    min_samples: int = Field(
        default=3, ge=1, description="data points per version before a metric can PASS or FAIL"
    )
    alpha: Annotated[float, Field(gt=0, lt=0.5), AS_FRACTION] | None = Field(
        default=None,
        description=f"false-abort rate of a whole rollout, all metrics together (default "
        f"{DEFAULT_ALPHA}); give alpha or confidence, not both",
    )
    confidence: Annotated[float, Field(gt=0.5, lt=1), AS_FRACTION] | None = Field(
        default=None, description="1 - alpha"
    )
    failure_limit: int = Field(default=0, ge=0, description="FAIL results tolerated before abort")
    inconclusive_limit: int = Field(
        default=3,
        ge=0,
        description="step extensions on INCONCLUSIVE before on_inconclusive applies",
    )
    on_inconclusive: Literal["pause", "abort"] = "pause"
    consecutive_error_limit: int = Field(
        default=4, ge=0, description="failed queries in a row tolerated before INCONCLUSIVE"
    )
    pass_score: Annotated[float, Field(ge=0, le=100), AS_PERCENT] = 95
    marginal_score: Annotated[float, Field(ge=0, le=100), AS_PERCENT] = 75
    one_pod_explains: Literal["inconclusive", "fail"] = Field(
        default="inconclusive",
        description="a FAIL that one canary pod explains while the others match the baseline "
        "(a pod on a bad node, not the version): inconclusive says so and waits for a person; "
        "fail aborts all the same. Needs queries that keep the pod label",
    )
    pod_label: str = Field(
        default="pod",
        pattern=LABEL_NAME_PATTERN,
        description="the label that tells pods apart in queries written by (pod)",
    )
    baseline: Literal["stable", "fresh"] = Field(
        default="stable",
        description="what the canary is compared with: stable, the running stable fleet; fresh, "
        "new pods of the stable version started beside the canary with its size and its share "
        "of traffic (Kayenta's baseline), so pod age, warm-up and cache state cancel out",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Analysis:
        if self.alpha is not None and self.confidence is not None:
            raise ValueError("give alpha or confidence, not both (alpha = 1 - confidence)")
        if self.interval <= timedelta(0):
            raise ValueError("interval must be longer than zero")
        if self.marginal_score > self.pass_score:
            raise ValueError(
                f"marginal_score ({self.marginal_score:g}) is above pass_score "
                f"({self.pass_score:g})"
            )
        return self

    @property
    def false_abort_rate(self) -> float:
        """The alpha a whole rollout is held to, however it was written."""
        if self.alpha is not None:
            return self.alpha
        if self.confidence is not None:
            return 1.0 - self.confidence
        return DEFAULT_ALPHA


class Policy(PolicyModel):
    name: Name
    description: str = ""
    owner: str = Field(default="", description="team or person who answers for this policy")
    args: list[Arg] = Field(default_factory=list)
    analysis: Analysis = Field(default_factory=Analysis)
    metrics: list[Metric] = Field(min_length=1)
    strategy: Strategy
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    alerts: list[AlertRouteName] = Field(default_factory=list, description="alert route names")
    hooks: list[HookSpec] = Field(default_factory=list, description="HTTP hooks (hooks.py)")

    @field_validator("hooks")
    @classmethod
    def _distinct_hooks(cls, hooks: list[HookSpec], info: ValidationInfo) -> list[HookSpec]:
        metrics = info.data.get("metrics") or []
        problem = hook_problems(hooks, {metric.name for metric in metrics})
        if problem is not None:
            raise ValueError(problem)
        return hooks

    @model_validator(mode="after")
    def _cross_field_rules(self, info: ValidationInfo) -> Policy:
        problems = policy_problems(
            arg_names={arg.name for arg in self.args},
            arg_defaults={arg.name: arg.default for arg in self.args},
            interval=self.analysis.interval,
            baseline=self.analysis.baseline,
            metrics=self.metrics,
            strategy=self.strategy,
            traffic=self.traffic,
        )
        collector = (info.context or {}).get("problems")
        if problems and isinstance(collector, list):
            collector.extend(problems)  # the loader locates and reports them all
        elif problems:
            raise ValueError("; ".join(f"{p.dotted_path}: {p.message}" for p in problems))
        return self

    @classmethod
    def checked(cls, data: object) -> tuple[Policy, list[PolicyProblem]]:
        """Validate ``data`` collecting cross-field problems instead of stopping at the first."""
        problems: list[PolicyProblem] = []
        policy = cls.model_validate(data, context={"problems": problems})
        return policy, problems
