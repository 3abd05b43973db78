"""Numbers in the judges' sentences read as people write them, the same wherever they appear."""

from __future__ import annotations

import math

import pytest

from analyzer.judges.decisions import TIMES, format_e, format_evalue, ratio_with_interval


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.39, "0.39"), (1.7, "1.7"), (200.0, "200"), (1892.4, "1,892"), (81_633.0, "81,633")],
)
def test_an_e_value_below_a_million_is_written_out(value: float, shown: str) -> None:
    assert format_evalue(value) == shown
    assert format_e(math.log(value)) == shown


def test_an_e_value_of_a_million_or_more_is_in_powers_of_ten() -> None:
    assert format_evalue(1.34e10) == "1.3e10"


def test_a_ratio_and_its_interval_never_read_as_powers_of_ten_below_a_million() -> None:
    assert ratio_with_interval(0.0, 0.0, 200.0) == TIMES + "0 [0-200]"
    assert ratio_with_interval(4810.0, 12.3, 1234.0) == TIMES + "4,810 [12-1,200]"
    assert ratio_with_interval(1.42, 0.91, 2.3) == TIMES + "1.42 [0.91-2.3]"
    assert ratio_with_interval(0.0, 0.0, math.inf) == TIMES + "0 [0-∞]"
    assert ratio_with_interval(2.0, 1.5, 3.4e6) == TIMES + "2 [1.5-3.4e6]"


def test_without_a_baseline_there_is_no_ratio() -> None:
    assert ratio_with_interval(math.nan, 0.0, math.inf) == "(the baseline had none)"
