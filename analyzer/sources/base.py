"""The MetricSource seam: the analyzer's only way to read the outside world.

``query_range`` returns plain arrays so judges stay pure functions of data. A source raises
``QueryError`` when the query is wrong and ``TemporarySourceError`` when it could not answer now;
an empty list means the query matched nothing (NO_DATA), never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Series:
    """One time series: its labels and aligned arrays of Unix timestamps (s) and values."""

    labels: Mapping[str, str]
    timestamps: FloatArray
    values: FloatArray = field(repr=False)

    def __post_init__(self) -> None:
        if self.timestamps.shape != self.values.shape:
            raise ValueError("timestamps and values must have the same length")


class MetricSource(Protocol):
    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """Evaluate ``promql`` at every ``step`` from ``start`` to ``end`` inclusive."""
        ...
