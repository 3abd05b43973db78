"""Which model and field of the policy language an error location points at.

Pydantic's error locations name fields and union tags (``metrics, 0, counts, judge``) but not the
model they belong to. The messages need it: "did you mean" looks among the fields of the mapping
that holds the typo, and a missing field is explained by its own description. This walks the
models' type hints along a location, choosing a union's member by its tag as pydantic does.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import Tag
from pydantic.fields import FieldInfo

from analyzer.policy.base import PolicyModel


def model_at(root: type[PolicyModel], loc: Sequence[str | int]) -> type[PolicyModel] | None:
    """The model whose fields the mapping at ``loc`` (a pydantic location) holds, if one is."""
    current: Any = root
    for part in loc:
        current = _step(current, part)
        if current is None:
            return None
    model = _unwrapped(current)
    return model if isinstance(model, type) and issubclass(model, PolicyModel) else None


def field_at(root: type[PolicyModel], loc: Sequence[str | int]) -> FieldInfo | None:
    """The field a pydantic location ends at, with its description and constraints."""
    if not loc or not isinstance(loc[-1], str):
        return None
    model = model_at(root, loc[:-1])
    return model.model_fields.get(loc[-1]) if model is not None else None


def field_names(model: type[PolicyModel]) -> list[str]:
    """The names a policy may write in this model's mapping: fields and their aliases."""
    names = list(model.model_fields)
    names += [field.alias for field in model.model_fields.values() if field.alias]
    return names


def union_tags(root: type[PolicyModel], loc: Sequence[str | int], tag_field: str) -> list[str]:
    """The tags a discriminated union at ``loc`` accepts (``counts``, ``histogram``, ...)."""
    current: Any = root
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    return [tag for member in _members(current) if (tag := _tag_of(member, tag_field))]


def kinds_with_field(
    root: type[PolicyModel], loc: Sequence[str | int], name: str
) -> tuple[str, list[str]]:
    """Where a field written under the wrong kind belongs: for ``query`` on a counts metric
    (``loc`` ends at the tag, ``metrics, 0, counts``), ``("kind", ["series", "threshold"])``."""
    if not loc or not isinstance(loc[-1], str):
        return "", []
    current: Any = root
    for part in loc[:-1]:
        current = _step(current, part)
        if current is None:
            return "", []
    members = _members(current)
    if len(members) < 2:  # ``loc`` does not end at a union's tag
        return "", []
    tag_field, tags = "", []
    for member in members:
        model = _unwrapped(member)
        tag = _tag_of(member)
        if not (isinstance(model, type) and issubclass(model, PolicyModel)) or tag is None:
            continue
        tag_field = tag_field or _literal_field(model, tag)
        if tag != loc[-1] and name in field_names(model):
            tags.append(tag)
    return tag_field, tags


def _literal_field(model: type[PolicyModel], tag: str) -> str:
    """The field whose only value is ``tag`` (``kind`` for ``counts``)."""
    for field_name, field in model.model_fields.items():
        values = [str(value) for value in get_args(field.annotation)]
        if get_origin(field.annotation) is Literal and values == [tag]:
            return field_name
    return ""


def _unwrapped(annotation: Any) -> Any:
    """Without ``Annotated[...]`` and without ``| None``."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        members = _members(annotation)
        present = [m for m in members if m is not type(None)]
        if len(members) > 1 and len(present) == 1:
            annotation = present[0]
            continue
        return annotation


def _members(annotation: Any) -> list[Any]:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return list(get_args(annotation))
    return [annotation]


def _tag_of(member: Any, tag_field: str = "") -> str | None:
    """A union member's tag: its ``Tag(...)``, else the value of its Literal ``tag_field``."""
    if get_origin(member) is Annotated:
        for extra in get_args(member)[1:]:
            if isinstance(extra, Tag):
                return extra.tag
    model = _unwrapped(member)
    if not (isinstance(model, type) and issubclass(model, PolicyModel)):
        return None
    names = [tag_field] if tag_field else list(model.model_fields)
    for name in names:
        field = model.model_fields.get(name)
        if field is not None and get_origin(field.annotation) is Literal:
            values = get_args(field.annotation)
            if len(values) == 1:
                return str(values[0])
    return None


def _step(current: Any, part: str | int) -> Any:
    annotation = _unwrapped(current)
    if isinstance(part, int):
        return get_args(annotation)[0] if get_origin(annotation) is list else None
    if isinstance(annotation, type) and issubclass(annotation, PolicyModel):
        field = annotation.model_fields.get(part)
        if field is None:
            field = next((f for f in annotation.model_fields.values() if f.alias == part), None)
        return field.annotation if field is not None else None
    for member in _members(annotation):  # a union: ``part`` is the tag pydantic put in loc
        if _tag_of(member) == part:
            return member
    return None
