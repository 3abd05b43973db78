"""An analysis step's ``load:`` block: bounded synthetic traffic for a version users do not reach.

Blue-green's preview and a canary at 0% (or only a targeted audience) get little or no user
traffic, so their analysis has nothing to judge. ``load:`` asks Canarist to send requests to the
new version for the analysis window, like Flagger's loadtester, but bounded by the policy itself:

- ``rate`` requests per second (``20/s``, ``600/m`` or a number per second), at most
  ``MAX_RATE_PER_SECOND``;
- ``duration`` (default: the analysis step's), never longer than the step;
- ``max_requests`` in all (default: rate x duration), at most ``MAX_TOTAL_REQUESTS``.

Whatever comes first ends it. ``requests`` lists what to send (cycled in order), or names a
recorded sample file in the policy directory (one ``METHOD /path`` a line); ``headers`` go with
every request. The process that sends it is ``canarist load`` (workers/load/).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
)

from analyzer.policy.base import PolicyModel
from analyzer.policy.durations import Duration

MAX_RATE_PER_SECOND = 200.0
MAX_TOTAL_REQUESTS = 100_000
MAX_REQUESTS_LISTED = 100
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
SAMPLE_FILE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(txt|http)$"
PATH_PATTERN = r"^/[^\s]*$"
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute)\s*$")
_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
RATE_JSON_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^ *[0-9]+(\.[0-9]+)? */ *(s|sec|second|m|min|minute) *$"},
        {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RATE_PER_SECOND},
    ],
    "description": "requests per second: 20/s, 600/m, or a number; at most 200/s",
}


def parse_rate(value: object) -> float:
    """``20/s``, ``600/m`` or a number, as requests per second; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"bad rate {value!r}: expected e.g. 20/s or 600/m")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str) and (found := _RATE.match(value)):
        rate = float(found.group(1)) / _PER[found.group(2)]
    else:
        raise ValueError(f"bad rate {value!r}: expected e.g. 20/s or 600/m")
    if rate <= 0:
        raise ValueError(f"rate {value!r} sends nothing: give a positive rate such as 20/s")
    if rate > MAX_RATE_PER_SECOND:
        raise ValueError(
            f"rate {value!r} is {rate:g} requests/s, above the limit of "
            f"{MAX_RATE_PER_SECOND:g}/s for synthetic load"
        )
    return rate


def _listed_or_file(value: object) -> str:
    """``requests:`` is a list of requests or one sample file's name: judged by what it is."""
    return "file" if isinstance(value, str) else "list"


Rate = Annotated[float, BeforeValidator(parse_rate), WithJsonSchema(RATE_JSON_SCHEMA)]
Headers = dict[Annotated[str, Field(pattern=HEADER_NAME_PATTERN)], str]


class LoadRequestSpec(PolicyModel):
    model_config = ConfigDict(title="LoadRequest")  # its name in the schema and messages

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    path: str = Field(default="/", description="the path and query, e.g. /api/items?page=2")
    headers: Headers = Field(default_factory=dict)
    body: str | None = Field(default=None, max_length=65_536)

    @field_validator("path")
    @classmethod
    def _a_path(cls, path: str) -> str:
        if not re.fullmatch(PATH_PATTERN, path):
            raise ValueError(f"{path!r} is not a path: write one starting with /, e.g. /api/items")
        return path


class LoadSpec(PolicyModel):
    model_config = ConfigDict(title="Load")  # its name in the schema and messages

    rate: Rate = Field(description="requests per second: 20/s, 600/m, or a number")
    duration: Duration | None = Field(
        default=None, description="how long to send; default and at most: the analysis step's"
    )
    requests: Annotated[
        Annotated[
            list[LoadRequestSpec], Field(min_length=1, max_length=MAX_REQUESTS_LISTED), Tag("list")
        ]
        | Annotated[str, Field(pattern=SAMPLE_FILE_PATTERN), Tag("file")],
        Discriminator(_listed_or_file),
    ] = Field(
        default_factory=lambda: [LoadRequestSpec()],
        description="requests to send in turn, or a sample file in the policy directory",
    )
    headers: Headers = Field(default_factory=dict, description="sent with every request")
    max_requests: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOTAL_REQUESTS,
        description="requests in all; default rate x duration",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Kubernetes: the preview Service's port (80)"
    )

    def seconds(self, step: timedelta) -> float:
        """How long it runs within an analysis step of ``step``."""
        return min(step, self.duration or step).total_seconds()

    def total(self, step: timedelta) -> int:
        """The most requests it sends within a step of ``step``."""
        planned = max(1, round(self.rate * self.seconds(step)))
        return min(planned, self.max_requests or MAX_TOTAL_REQUESTS)

    def check_within(self, step: timedelta) -> None:
        """ValueError unless this load is bounded by a step of ``step``."""
        if self.duration is not None and self.duration > step:
            raise ValueError(
                f"load.duration {_seconds(self.duration)} is longer than the analysis step "
                f"({_seconds(step)}): synthetic load never outlives its step"
            )
        if self.duration is not None and self.duration <= timedelta(0):
            raise ValueError("load.duration must be positive")
        planned = self.rate * self.seconds(step)
        if self.max_requests is None and planned > MAX_TOTAL_REQUESTS:
            raise ValueError(
                f"load sends {planned:.0f} requests ({self.rate:g}/s for "
                f"{_seconds(step if self.duration is None else self.duration)}), above the cap "
                f"of {MAX_TOTAL_REQUESTS}: lower the rate or the duration, or set max_requests"
            )


def _seconds(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{seconds:g}s" if seconds < 120 else f"{seconds / 60:g}m"
