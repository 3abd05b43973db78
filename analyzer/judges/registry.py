"""Which implementation judges a metric: the policy's ``judge.type`` mapped to a Judge.

A typo or a judge this build does not have must stop the analysis with a clear message, never fall
back to some default test that the SRE did not choose. Implementations are named as
``"module:Class"`` and imported on first use, so that importing the registry does not pull in
every judge's dependencies, and so a judge can be added by one line here and one sibling module.

Each implementation class takes no constructor arguments (everything it needs arrives with the
metric and the JudgeContext) and implements ``analyzer.judges.base.Judge``. The sequential judge
is expected as class ``SequentialJudge`` in ``analyzer.judges.sequential``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import import_module
from types import MappingProxyType

from analyzer.errors import PermanentError
from analyzer.judges.base import Judge

IMPLEMENTATIONS: Mapping[str, str] = MappingProxyType(
    {
        "sequential": "analyzer.judges.sequential:SequentialJudge",
        "mann_whitney": "analyzer.judges.mannwhitney:MannWhitneyJudge",
        "threshold": "analyzer.judges.threshold:ThresholdJudge",
        "trend": "analyzer.judges.trend:TrendJudge",
    }
)


class UnknownJudgeError(PermanentError, LookupError):
    """No implementation is registered for a judge type (a LookupError, like a missing key)."""

    def __init__(self, judge_type: str) -> None:
        self.judge_type = judge_type
        known = ", ".join(sorted(IMPLEMENTATIONS))
        super().__init__(f"unknown judge type {judge_type!r}; known: {known}")


def judge_types() -> tuple[str, ...]:
    """Every judge type this build can run, sorted."""
    return tuple(sorted(IMPLEMENTATIONS))


@cache
def judge_for(judge_type: str) -> Judge:
    """The judge for ``judge_type``; one shared instance per type, as judges hold no state.

    Raises UnknownJudgeError for an unregistered type. An ImportError from a registered module is
    left alone: it is a broken build, not a bad policy, and must not read as one.
    """
    target = IMPLEMENTATIONS.get(judge_type)
    if target is None:
        raise UnknownJudgeError(judge_type)
    module_name, _, class_name = target.partition(":")
    implementation = getattr(import_module(module_name), class_name)
    judge: Judge = implementation()
    if not callable(getattr(judge, "judge", None)):
        raise TypeError(f"{target} does not implement the Judge protocol (no judge method)")
    return judge
