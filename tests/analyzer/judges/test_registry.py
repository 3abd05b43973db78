"""The judge registry: every policy judge type resolves, an unknown one is an error."""

from __future__ import annotations

import importlib.util

import pytest

from analyzer.errors import CanaristError
from analyzer.judges.mannwhitney import MannWhitneyJudge
from analyzer.judges.registry import IMPLEMENTATIONS, UnknownJudgeError, judge_for, judge_types
from analyzer.judges.threshold import ThresholdJudge
from analyzer.policy.judges import JUDGE_TYPES


def test_every_type_the_policy_language_accepts_is_registered() -> None:
    assert judge_types() == tuple(sorted(JUDGE_TYPES))


def test_judges_resolve_to_one_shared_instance() -> None:
    assert isinstance(judge_for("mann_whitney"), MannWhitneyJudge)
    assert isinstance(judge_for("threshold"), ThresholdJudge)
    assert judge_for("threshold") is judge_for("threshold")


def test_an_unknown_type_raises_and_never_falls_back() -> None:
    with pytest.raises(UnknownJudgeError, match="unknown judge type 'mann-whitney'") as caught:
        judge_for("mann-whitney")
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, CanaristError)
    assert "known: mann_whitney, sequential, threshold" in str(caught.value)


def test_sequential_is_loaded_by_name_on_first_use() -> None:
    assert IMPLEMENTATIONS["sequential"] == "analyzer.judges.sequential:SequentialJudge"
    if importlib.util.find_spec("analyzer.judges.sequential") is None:
        with pytest.raises(ModuleNotFoundError):
            judge_for("sequential")
    else:
        assert callable(judge_for("sequential").judge)
