"""Judge settings in a policy: which statistical test decides a metric, and its parameters.

Each model is the policy's side of a judge (``SequentialSpec`` configures analyzer/judges/'s
``SequentialJudge``); the schema and messages call it by its title, ``SequentialJudge``, as before.

``judge:`` may be written as a bare name (``judge: mann_whitney``) or as a mapping with ``type:``.
An unknown type is an error, never a silent fallback to some default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from analyzer.policy.base import PolicyModel
from analyzer.policy.durations import Duration
from analyzer.policy.percent import AS_FRACTION


class SequentialSpec(PolicyModel):
    """Anytime-valid test on counts (errors/requests) or histogram buckets.

    The false-abort rate stays at the policy's alpha however often the analysis looks, so it may
    run every interval. With ``early_pass`` it may also conclude PASS before the step ends once the
    evidence that the canary is within tolerance is as strong as the evidence needed to abort.
    """

    model_config = ConfigDict(title="SequentialJudge")  # its name in the schema and messages

    type: Literal["sequential"] = "sequential"
    early_pass: bool = True
    min_events: int = Field(
        default=0, ge=0, description="events (e.g. errors) needed before a FAIL may be declared"
    )


class MannWhitneySpec(PolicyModel):
    """Kayenta-compatible fixed-horizon test on series of per-interval values."""

    model_config = ConfigDict(title="MannWhitneyJudge")  # its name in the schema and messages

    type: Literal["mann_whitney"] = "mann_whitney"
    confidence: Annotated[float, Field(gt=0.5, lt=1.0), AS_FRACTION] = 0.98
    nan_strategy: Literal["remove", "replace"] = "remove"
    outliers: Literal["keep", "remove_iqr"] = "keep"
    iqr_factor: float = Field(default=3.0, gt=0)


class TrendSpec(PolicyModel):
    """Anytime-valid test of a gauge that grows in the canary and not in the baseline (a leak).

    FAIL when the canary-to-baseline ratio is growing faster than ``tolerance`` per ``horizon``
    and the canary is already above the baseline by more than half its ``tolerance``: a new
    version's warm-up, which climbs from below, is not a leak.
    """

    model_config = ConfigDict(title="TrendJudge")  # its name in the schema and messages

    type: Literal["trend"] = "trend"
    horizon: Duration = Field(
        default=timedelta(hours=1),
        description="growth of the canary relative to the baseline allowed: tolerance per horizon",
    )

    @model_validator(mode="after")
    def _positive(self) -> TrendSpec:
        if self.horizon <= timedelta(0):
            raise ValueError("horizon must be longer than zero")
        return self


class ThresholdSpec(PolicyModel):
    """An absolute condition on the canary alone (Argo / Flagger style): ``min <= value <= max``."""

    model_config = ConfigDict(title="ThresholdJudge")  # its name in the schema and messages

    type: Literal["threshold"] = "threshold"
    max: float | None = None
    min: float | None = None
    aggregate: Literal["last", "mean", "max", "min"] = Field(
        default="max", description="how the window's samples reduce to the one value compared"
    )

    @model_validator(mode="after")
    def _needs_a_bound(self) -> ThresholdSpec:
        if self.max is None and self.min is None:
            raise ValueError("a threshold judge needs max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


def expand_judge_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


@dataclass(frozen=True)
class JudgeShorthand:
    """Accept ``judge: NAME`` for a judge with default parameters, in the schema too."""

    names: tuple[str, ...]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [{"type": "string", "enum": list(self.names)}, handler(core_schema)]}


JUDGE_TYPES = ("sequential", "mann_whitney", "threshold", "trend")

AnyJudge = Annotated[
    SequentialSpec | MannWhitneySpec | ThresholdSpec,
    BeforeValidator(expand_judge_shorthand),
    JudgeShorthand(JUDGE_TYPES),
    Field(discriminator="type"),
]
