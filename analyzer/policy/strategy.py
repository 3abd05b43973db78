"""The ``strategy:`` section: how a release moves forward between analyses.

- ``canary``      weight steps with timed or manual pauses and analysis windows.
- ``rolling``     batches of replicas (or a percent of them) move to the new version.
- ``blue_green``  a full preview beside the active version, analysed, then switched at once.
- ``targeted``    a chosen audience first (header, cookie or region), then weight steps.

Weights and batches are cumulative targets ("set weight to 25"), never increments.

Every type takes ``confirm_promotion``: ``auto`` (the default) promotes once the last stage
passes; ``manual`` holds there, awaiting a person's ``approve`` (Spinnaker's manual judgment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from analyzer.policy.base import PolicyModel, PolicyWord
from analyzer.policy.durations import DURATION_JSON_SCHEMA, Duration
from analyzer.policy.load import LoadSpec
from analyzer.policy.percent import AS_PERCENT

STEP_KINDS = ("set_weight", "pause", "analyze")
TOKEN_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""An HTTP header or cookie name (RFC 9110's token)."""
REGION_PATTERN = r"^[A-Za-z0-9_-]+$"


class StrategyType(PolicyWord):
    """Every ``strategy.type`` a policy may name; each strategy below takes one as its tag.

    A rollout keeps its policy's (``RolloutSpec.strategy``), so the platforms know how to scale."""

    CANARY = "canary"
    ROLLING = "rolling"
    BLUE_GREEN = "blue_green"
    TARGETED = "targeted"


class ConfirmPromotion(PolicyWord):
    """Who confirms the promotion once the last stage passes: Canarist, or a person."""

    AUTO = "auto"
    MANUAL = "manual"


class ConfirmableStrategy(PolicyModel):
    confirm_promotion: ConfirmPromotion = Field(
        default=ConfirmPromotion.AUTO,
        description=(
            "manual: once the last stage passes, wait for a person to approve the promotion "
            "(canarist approve); auto: promote at once"
        ),
    )


# A step's ``pause:`` and an ``analyze:`` block; the plan's stages they compile to are
# workers/strategies' ``Pause`` and ``Analyze``. (No docstring: it would be the schema's text.)
class PauseSpec(PolicyModel):
    model_config = ConfigDict(title="Pause")  # its name in the schema and messages

    duration: Duration | None = Field(
        default=None, description="how long to hold; without it, hold until promoted by a person"
    )


class AnalyzeSpec(PolicyModel):
    model_config = ConfigDict(title="Analyze")  # its name in the schema and messages

    duration: Duration = Field(description="how long to hold the weight while analysing")
    load: LoadSpec | None = Field(
        default=None,
        description="synthetic traffic to the new version for this window (no user traffic)",
    )

    @model_validator(mode="after")
    def _load_within_the_step(self) -> AnalyzeSpec:
        if self.load is not None:
            self.load.check_within(self.duration)
        return self


def _empty_mapping_for_null(value: Any) -> Any:
    return {} if value is None else value


def _duration_shorthand(value: Any) -> Any:
    """``analyze: 10m`` (or ``pause: 5m``) is ``{duration: 10m}``: the block's one field."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {"duration": value}
    return value


@dataclass(frozen=True)
class DurationShorthand:
    """The schema says a block may be written as its duration alone."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [DURATION_JSON_SCHEMA, handler(core_schema)]}


AnalyzeBlock = Annotated[AnalyzeSpec, BeforeValidator(_duration_shorthand), DurationShorthand()]
"""``analyze: {duration: 10m}``, or ``analyze: 10m``, wherever a strategy analyses."""

PauseBlock = Annotated[
    PauseSpec,
    BeforeValidator(_duration_shorthand),
    BeforeValidator(_empty_mapping_for_null),
    DurationShorthand(),
]
"""``pause: {duration: 5m}`` or ``pause: 5m``; ``pause: {}`` (or empty) waits for a person."""


class SetWeightStep(PolicyModel):
    set_weight: Annotated[int, Field(ge=0, le=100), AS_PERCENT] = Field(
        description="percent of traffic to the canary"
    )


class PauseStep(PolicyModel):
    pause: PauseBlock


class AnalyzeStep(PolicyModel):
    analyze: AnalyzeBlock


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [kind for kind in STEP_KINDS if kind in value]
        return present[0] if len(present) == 1 else None
    return next((kind for kind in STEP_KINDS if hasattr(value, kind)), None)


Step = Annotated[
    Annotated[SetWeightStep, Tag("set_weight")]
    | Annotated[PauseStep, Tag("pause")]
    | Annotated[AnalyzeStep, Tag("analyze")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of set_weight, pause or analyze",
    ),
]


def check_load_placement(steps: list[Step]) -> None:
    """Synthetic load only where users do not reach the new version: at weight 0."""
    weight = 0
    for index, step in enumerate(steps):
        if isinstance(step, SetWeightStep):
            weight = step.set_weight
        elif isinstance(step, AnalyzeStep) and step.analyze.load is not None and weight > 0:
            raise ValueError(
                f"steps[{index}].analyze.load: the canary already takes {weight}% of users "
                "here; synthetic load is for an analysis at weight 0 (or a targeted audience)"
            )


class CanaryStrategy(ConfirmableStrategy):
    type: Literal[StrategyType.CANARY]
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _load_without_users(self) -> CanaryStrategy:
        check_load_placement(self.steps)
        return self


class Batch(PolicyModel):
    replicas: int | None = Field(default=None, ge=1, description="new-version replicas in all")
    percent: Annotated[int, Field(ge=1, le=100), AS_PERCENT] | None = Field(
        default=None, description="percent of replicas"
    )
    analyze: Duration | None = Field(
        default=None, description="analyse this long after the batch is ready, before the next"
    )

    @model_validator(mode="after")
    def _one_size(self) -> Batch:
        if (self.replicas is None) == (self.percent is None):
            raise ValueError("a batch has exactly one of replicas or percent")
        return self


class RollingStrategy(ConfirmableStrategy):
    type: Literal[StrategyType.ROLLING]
    batches: list[Batch] = Field(min_length=1)


class BlueGreenStrategy(ConfirmableStrategy):
    type: Literal[StrategyType.BLUE_GREEN]
    preview_replicas: int | None = Field(
        default=None, ge=1, description="replicas of the preview; unset = as many as active"
    )
    analyze: AnalyzeBlock | None = Field(default=None, description="analysis of the preview")
    auto_promote: bool = True
    auto_promote_after: Duration | None = None
    post_promotion_analyze: AnalyzeBlock | None = None
    scale_down_delay: Duration = Field(
        default=timedelta(seconds=30),
        description="keep the old side this long after the switch so an abort switches back",
    )

    @model_validator(mode="after")
    def _load_on_the_preview(self) -> BlueGreenStrategy:
        if self.post_promotion_analyze is not None and self.post_promotion_analyze.load:
            raise ValueError(
                "post_promotion_analyze.load: after the switch every user reaches the new "
                "version; synthetic load belongs on the preview's analyze"
            )
        return self


class HeaderMatch(PolicyModel):
    name: str = Field(pattern=TOKEN_PATTERN)
    value: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_value(self) -> HeaderMatch:
        if (self.value is None) == (self.regex is None):
            raise ValueError("a header match has exactly one of value or regex")
        return self


class CookieMatch(PolicyModel):
    name: str = Field(pattern=TOKEN_PATTERN)
    value: str


class MatchRule(PolicyModel):
    """One audience: requests with this header, this cookie, or from this region."""

    header: HeaderMatch | None = None
    cookie: CookieMatch | None = None
    region: str | None = Field(default=None, pattern=REGION_PATTERN)

    @model_validator(mode="after")
    def _one_kind(self) -> MatchRule:
        if sum(rule is not None for rule in (self.header, self.cookie, self.region)) != 1:
            raise ValueError("a match rule has exactly one of header, cookie or region")
        return self


class TargetedStrategy(ConfirmableStrategy):
    type: Literal[StrategyType.TARGETED]
    match: list[MatchRule] = Field(min_length=1)
    region_header: str = Field(
        default="x-region", description="the request header that carries the user's region"
    )
    analyze: AnalyzeBlock = Field(description="analysis of the targeted audience before weights")
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _load_without_users(self) -> TargetedStrategy:
        check_load_placement(self.steps)
        return self


Strategy = Annotated[
    CanaryStrategy | RollingStrategy | BlueGreenStrategy | TargetedStrategy,
    Field(discriminator="type"),
]
