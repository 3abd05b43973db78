"""The ``metrics:`` section: what to measure for each version and how to judge the difference.

Each ``kind`` has its own query fields, so a typo such as ``query:`` on a counts metric is caught:

- ``counts``     errors over requests; the default judge is ``sequential``.
- ``histogram``  Prometheus histogram buckets (``by (le)``); judged by ``sequential``.
- ``series``     any gauge or rate sampled over time; Kayenta's ``mann_whitney`` by default, or
                 ``trend`` for a gauge that must not grow against the baseline (memory leaks).

Every query may return one series per pod (``sum by (pod) (…)``, ``sum by (le, pod) (…)``,
``max by (pod) (…)``): the version is their sum (a series: their mean), and a FAIL that one
canary pod explains on its own is said so and decided by ``analysis.one_pod_explains``.
- ``threshold``  an absolute condition on the canary alone (``max``/``min``), Argo style.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from analyzer.policy.base import Name, PolicyModel, check_template
from analyzer.policy.judges import (
    AnyJudge,
    JudgeShorthand,
    MannWhitneySpec,
    SequentialSpec,
    ThresholdSpec,
    TrendSpec,
    expand_judge_shorthand,
)
from analyzer.policy.percent import AS_FRACTION, AS_PERCENT

Template = Annotated[str, AfterValidator(check_template)]
Direction = Literal["increase_is_bad", "decrease_is_bad", "either"]
NoDataPolicy = Literal["inconclusive", "fail", "pass"]


class MetricBase(PolicyModel):
    name: Name
    description: str = ""
    direction: Direction = "increase_is_bad"
    tolerance: Annotated[float, Field(ge=0, le=100), AS_FRACTION] = Field(
        default=0.1,
        description="allowed relative regression before the canary counts as worse (0.1 = 10%)",
    )
    critical: bool = Field(default=False, description="a FAIL here aborts whatever the score")
    weight: Annotated[float, Field(gt=0, le=100), AS_PERCENT] | None = Field(
        default=None, description="share of the score in percent; unset = equal"
    )
    group: Name | None = None
    no_data: NoDataPolicy = Field(
        default="inconclusive",
        description="what a metric without data counts as once its step cannot extend further",
    )
    dry_run: bool = Field(default=False, description="judge and report, but never count")

    def templates(self) -> dict[str, str]:
        """The PromQL templates of this metric by field name."""
        raise NotImplementedError


class CountsMetric(MetricBase):
    kind: Literal["counts"]
    errors: Template = Field(description="PromQL: bad events per interval, e.g. 5xx responses")
    total: Template = Field(description="PromQL: all events per interval, e.g. all responses")
    judge: AnyJudge = Field(default_factory=SequentialSpec)

    def templates(self) -> dict[str, str]:
        return {"errors": self.errors, "total": self.total}


class HistogramMetric(MetricBase):
    kind: Literal["histogram"]
    buckets: Template = Field(description="PromQL: bucket increases per interval, by (le)")
    sum: Template | None = Field(
        default=None,
        description="PromQL: the histogram's _sum increase per interval (with count: the exact "
        "mean latency per interval, judged beside the buckets; recommended)",
    )
    count: Template | None = Field(
        default=None, description="PromQL: the histogram's _count increase per interval"
    )
    judge: Annotated[
        SequentialSpec, BeforeValidator(expand_judge_shorthand), JudgeShorthand(("sequential",))
    ] = Field(default_factory=SequentialSpec)

    @model_validator(mode="after")
    def _sum_with_count(self) -> HistogramMetric:
        if (self.sum is None) != (self.count is None):
            raise ValueError("sum and count go together: give both (the mean is sum / count)")
        return self

    def templates(self) -> dict[str, str]:
        extra = {"sum": self.sum, "count": self.count} if self.sum and self.count else {}
        return {"buckets": self.buckets, **extra}


class SeriesMetric(MetricBase):
    kind: Literal["series"]
    query: Template = Field(description="PromQL: one value per interval for a version")
    judge: Annotated[
        MannWhitneySpec | ThresholdSpec | TrendSpec,
        BeforeValidator(expand_judge_shorthand),
        JudgeShorthand(("mann_whitney", "trend")),
        Field(discriminator="type"),
    ] = Field(default_factory=MannWhitneySpec)

    def templates(self) -> dict[str, str]:
        return {"query": self.query}


class ThresholdMetric(MetricBase):
    kind: Literal["threshold"]
    query: Template = Field(description="PromQL: the canary's value to hold within bounds")
    judge: Annotated[ThresholdSpec, BeforeValidator(expand_judge_shorthand)]

    def templates(self) -> dict[str, str]:
        return {"query": self.query}


AnyMetric = CountsMetric | HistogramMetric | SeriesMetric | ThresholdMetric
Metric = Annotated[AnyMetric, Field(discriminator="kind")]
