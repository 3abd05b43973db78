"""What an analysis concludes, with the evidence a person needs to trust it.

Every metric ends a pass as PASS, FAIL or INCONCLUSIVE; ``reason`` says why in one sentence and the
numbers behind it travel along (sample sizes, effect and interval, p-value or e-value, the bar it
was held to). The same JSON feeds the API, the CLI, alerts and reports.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Outcome(StrEnum):
    """Ordered from best to worst by ``severity`` (an alert lists its worst metrics first).

    A verdict is not the worst of its metrics' outcomes: scoring weighs them (see scoring.py).
    """

    PASS = "pass"
    INCONCLUSIVE = "inconclusive"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Outcome.PASS: 0, Outcome.INCONCLUSIVE: 1, Outcome.FAIL: 2}


class Reason(StrEnum):
    """Why an outcome is what it is, when a code helps a machine (alerts, the engine)."""

    EVIDENCE = "evidence"  # the test decided
    NO_DATA = "no_data"  # a version returned no data points
    TOO_FEW_SAMPLES = "too_few_samples"  # data, but below min_samples
    QUERY_ERROR = "query_error"  # the source failed (counts against consecutive_error_limit)
    WITHIN_TOLERANCE = "within_tolerance"  # a difference exists but the policy allows it
    ONE_POD = "one_pod"  # a FAIL that one canary pod explains (analyzer/judges/pods.py)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Judgement(Frozen):
    """One judge's decision on one metric, with its evidence."""

    outcome: Outcome
    reason: str = Field(description="one sentence a person can read")
    reason_code: Reason = Reason.EVIDENCE
    direction: str | None = Field(
        default=None, description="'high' or 'low' when the canary differs (Kayenta's class)"
    )
    baseline: dict[str, float] = Field(default_factory=dict, description="sizes and summaries")
    canary: dict[str, float] = Field(default_factory=dict)
    effect: float | None = Field(
        default=None, description="relative change of canary vs baseline (0.2 = 20% higher)"
    )
    effect_interval: tuple[float, float] | None = None
    p_value: float | None = None
    e_value: float | None = None
    threshold: float | None = Field(
        default=None, description="the bar: alpha for a p-value, 1/alpha for an e-value, a bound"
    )
    details: dict[str, Any] = Field(default_factory=dict)


class MetricVerdict(Frozen):
    name: str
    kind: str
    judge: str
    group: str | None = None
    critical: bool = False
    dry_run: bool = False
    weight: float = 0.0
    judgement: Judgement

    @property
    def outcome(self) -> Outcome:
        return self.judgement.outcome


class Verdict(Frozen):
    """The overall decision of one analysis pass and the metrics that drove it."""

    outcome: Outcome
    reason: str
    score: float | None = Field(default=None, description="Kayenta-style 0-100 score")
    decided_by: list[str] = Field(default_factory=list, description="metrics behind the outcome")
    metrics: list[MetricVerdict] = Field(default_factory=list)
    window_start: float | None = None
    window_end: float | None = None
    baseline_shift: float = Field(
        default=0.0,
        description="seconds earlier the baseline was read (blue-green after the switch); 0: "
        "at the same time as the canary",
    )
