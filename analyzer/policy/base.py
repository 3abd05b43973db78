"""The base model every part of a policy is built on: frozen, and strict about unknown fields."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from analyzer.errors import TemplateError
from analyzer.policy.promql import PromQLTemplate

NAME_PATTERN = r"^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""Lowercase names for metrics, groups, args and alert routes: they end up in labels and URLs."""


class PolicyWord(StrEnum):
    """A word of the policy language (a strategy type, a router): an enum member that is also the
    string a policy writes, and that shows as that string (``'blue_green'``), in pydantic's
    messages and in logs alike, never as ``<StrategyType.BLUE_GREEN: 'blue_green'>``."""

    def __repr__(self) -> str:
        return repr(self.value)


class PolicyModel(BaseModel):
    """Policies are written by people: refuse unknown fields (typos) and never mutate."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def policy_name(class_name: str) -> str:
    """The name the policy language gives a model: its title where it sets one (``PauseSpec`` is
    ``Pause``), so a class renamed in Python changes neither the schema nor a message."""
    pending: list[type[PolicyModel]] = [PolicyModel]
    while pending:
        model = pending.pop()
        if model.__name__ == class_name:
            return model.model_config.get("title") or class_name
        pending.extend(model.__subclasses__())
    return class_name


def check_template(text: str) -> str:
    """Validate a PromQL template's syntax at load time; keep the text as written."""
    try:
        PromQLTemplate.parse(text)
    except TemplateError as exc:
        raise ValueError(str(exc)) from exc  # pydantic reports ValueErrors at the field
    return text
