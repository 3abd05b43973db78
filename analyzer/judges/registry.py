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

from functools import cache

from analyzer.errors import UnknownNameError
from analyzer.judges.base import Judge
from analyzer.registry import Registry, imported


class UnknownJudgeError(UnknownNameError):
    """No implementation is registered for a judge type (a LookupError, like a missing key)."""


IMPLEMENTATIONS: Registry[str, str] = Registry(
    "judge type",
    {
        "sequential": "analyzer.judges.sequential:SequentialJudge",
        "mann_whitney": "analyzer.judges.mannwhitney:MannWhitneyJudge",
        "threshold": "analyzer.judges.threshold:ThresholdJudge",
        "trend": "analyzer.judges.trend:TrendJudge",
    },
    UnknownJudgeError,
)


def judge_types() -> tuple[str, ...]:
    """Every judge type this build can run, sorted."""
    return IMPLEMENTATIONS.names


@cache
def judge_for(judge_type: str) -> Judge:
    """The judge for ``judge_type``; one shared instance per type, as judges hold no state.

    Raises UnknownJudgeError for an unregistered type. An ImportError from a registered module is
    left alone: it is a broken build, not a bad policy, and must not read as one.
    """
    target = IMPLEMENTATIONS[judge_type]
    judge: Judge = imported(target)()
    if not callable(getattr(judge, "judge", None)):
        raise TypeError(f"{target} does not implement the Judge protocol (no judge method)")
    return judge
