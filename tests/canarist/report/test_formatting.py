"""Every number on the report is written for a person, in its unit, with no exponent artefact."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from analyzer.sources.base import FloatArray
from canarist.report.formatting import Unit, percent, value_in
from canarist.report.svg import Chart, Line, render_chart
from tests.canarist.report.page_reading import Page

NAN, INF = math.nan, math.inf
VALUES = (0.0, 3.2e-5, 999.0, 1_000.0, 1e6, 1e9, 1e12, -1_234.5, NAN, INF)
WRITTEN = {
    Unit.NUMBER: ("0", "3.2e-5", "999", "1,000", "1M", "1B", "1T", "-1,234", "—", "∞"),
    Unit.E_VALUE: ("0", "3.2e-5", "999", "1,000", "1e6", "1e9", "1e12", "-1,234", "—", "∞"),
    Unit.P_VALUE: ("0", "3.2e-5", "999", "1,000", "1e6", "1e9", "1e12", "-1,234", "—", "∞"),
    Unit.RATIO: (
        "0%",
        "0.0032%",
        "99,900%",
        "100,000%",
        "1e8%",
        "1e11%",
        "1e14%",
        "-123,450%",
        "—",
        "∞",
    ),
    Unit.SECONDS: (
        "0 ms",
        "0.032 ms",
        "999 s",
        "1,000 s",
        "1M s",
        "1B s",
        "1T s",
        "-1,234 s",
        "—",
        "∞",
    ),
    Unit.BYTES: ("0 B", "3.2e-5 B", "999 B", "1 kB", "1 MB", "1 GB", "1 TB", "-1.23 kB", "—", "∞"),
}
READ_AS = [
    (Unit.E_VALUE, 1.0, "1"),
    (Unit.E_VALUE, 10.0, "10"),
    (Unit.E_VALUE, 0.61, "0.61"),
    (Unit.E_VALUE, 1_729.4, "1,729"),
    (Unit.E_VALUE, 999_999.0, "999,999"),
    (Unit.E_VALUE, 2.5e7, "2.5e7"),
    (Unit.E_VALUE, 1.5e10, "1.5e10"),
    (Unit.P_VALUE, 0.02, "0.02"),
    (Unit.P_VALUE, 0.000467, "0.00047"),
    (Unit.P_VALUE, 1.0, "1"),
    (Unit.SECONDS, 0.0853, "85.3 ms"),
    (Unit.SECONDS, 0.25, "250 ms"),
    (Unit.SECONDS, 1.2, "1,200 ms"),
    (Unit.SECONDS, 9.99, "9,990 ms"),
    (Unit.SECONDS, 10.0, "10 s"),
    (Unit.SECONDS, 12.34, "12.3 s"),
    (Unit.RATIO, 0.00932, "0.932%"),
    (Unit.RATIO, 0.25, "25%"),
    (Unit.BYTES, 200e6, "200 MB"),
    (Unit.BYTES, 1.5e9, "1.5 GB"),
    (Unit.BYTES, 999_999_999.0, "1 GB"),  # rounded first: never "1,000 MB"
    (Unit.NUMBER, 999_999_999.0, "1B"),
    (Unit.NUMBER, 17_297.0, "17,297"),
    (Unit.NUMBER, 0.1 + 0.2, "0.3"),
]


@pytest.mark.parametrize("unit", list(WRITTEN))
def test_the_table_of_values_reads_as_people_write_it(unit: Unit) -> None:
    assert tuple(value_in(unit, value) for value in VALUES) == WRITTEN[unit]
    assert value_in(unit, None) == "—" and value_in(unit, -INF) == "-∞"


@pytest.mark.parametrize(("unit", "value", "written"), READ_AS)
def test_each_unit_reads_in_its_own_terms(unit: Unit, value: float, written: str) -> None:
    assert value_in(unit, value) == written


def test_effects_carry_their_sign() -> None:
    assert percent(3.25, signed=True) == "+325%"
    assert percent(-0.05, signed=True) == "-5%"
    assert percent(0.0, signed=True) == "+0%"


@pytest.mark.parametrize("unit", list(Unit))
def test_no_magnitude_is_written_with_an_exponent_artefact(unit: Unit) -> None:
    """Python's ``1e+03``, a padded ``e-05``, or a suffix after an exponent (``1e+03M``)."""
    for exponent in np.arange(-12, 19, 0.25):
        for sign in (1, -1):
            for value in (sign * 10.0**exponent, sign * 10.0**exponent * 0.9999):
                text = value_in(unit, float(value))
                assert "e+" not in text and not re.search(r"e-0", text), (value, text)
                assert not re.search(r"e-?\d+([kMBGT]| [kMGTP]B)", text), (value, text)


def axis_labels(values: FloatArray, unit: Unit, log: bool) -> list[str]:
    times = np.arange(values.size, dtype=np.float64) * 60
    chart = Chart("e", 0, float(times[-1]), unit, (Line("e", times, values, "evidence"),), log=log)
    return [text.joined() for text in Page(render_chart(chart)).all("text")]


@pytest.mark.parametrize(
    ("e_values", "labels"),
    [
        ([1.5, 40.0, 700.0], ["1", "10", "100", "1,000"]),
        ([0.5, 3.0, 40.0, 2e3, 7e4], ["0.1", "1", "10", "100", "1,000", "10,000", "100,000"]),
        ([3.0, 2e3, 2e6, 1.5e10], ["1", "100", "10,000", "1e6", "1e8", "1e10", "1e12"]),
    ],
)
def test_the_e_value_axis_reads_1_10_1000_and_then_powers(
    e_values: list[float], labels: list[str]
) -> None:
    drawn = axis_labels(np.array(e_values), Unit.E_VALUE, log=True)

    assert [label for label in drawn if ":" not in label] == labels


def test_a_latency_axis_reads_in_ms() -> None:
    labels = axis_labels(np.array([0.08, 0.12, 0.31]), Unit.SECONDS, log=False)

    assert [label for label in labels if ":" not in label] == [
        "0 ms",
        "100 ms",
        "200 ms",
        "300 ms",
        "400 ms",
    ]
