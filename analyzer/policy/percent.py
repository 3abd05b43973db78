"""Percentages as people write them (``tolerance: 10%``), converted to each field's own unit.

Some fields are fractions (``tolerance: 0.1``, ``alpha: 0.01``, a judge's ``confidence: 0.98``),
others already count in percent (``weight: 50``, ``set_weight: 25``, ``pass_score: 95``). A
value written with ``%`` means the same thing in both: ``10%`` is 0.1 in a fraction field and 10
in a percent field. Without ``%`` a number is taken in the field's unit, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?\s*%$"
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*%")


def _percent_value(value: Any) -> float | None:
    """The number before ``%`` in ``value``, or None when it is not written as a percentage."""
    if isinstance(value, str) and (match := _PERCENT.fullmatch(value.strip())):
        return float(match.group(1))
    return None


def as_fraction(value: Any) -> Any:
    """``10%`` -> 0.1; anything else is left to the field's own validation."""
    percent = _percent_value(value)
    if percent is None:
        _refuse_other_text(value)
        return value
    return percent / 100


def as_percent(value: Any) -> Any:
    """``25%`` -> 25 (a whole number stays whole); anything else is left to the field."""
    percent = _percent_value(value)
    if percent is None:
        _refuse_other_text(value)
        return value
    return int(percent) if percent.is_integer() else percent


def _refuse_other_text(value: Any) -> None:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            raise ValueError(
                f"expected a number or a percentage such as 10%, found the text {value!r}"
            ) from None


@dataclass(frozen=True)
class PercentForm:
    """Accept ``10%`` beside the number, converted to the field's unit, in validation and in the
    schema. It goes after the field's bounds (``Annotated[float, Field(ge=0), AS_FRACTION]``), so
    the bounds apply to the converted number and the schema states them as JSON Schema does."""

    convert: Callable[[Any], Any]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.convert, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(schema), {"type": "string", "pattern": PERCENT_PATTERN}]}


AS_FRACTION = PercentForm(as_fraction)
"""A ratio written as a fraction (0.1) or a percentage (10%)."""

AS_PERCENT = PercentForm(as_percent)
"""A share in percent written as a number (50) or with its sign (50%)."""
