"""Pydantic's errors in the policy's own words: what is wrong, and what to write instead.

An SRE reads these, not a Python programmer: a message names the field as the file writes it,
describes what was found ("the text 'sequential'", "nothing"), and shows the form to write
(``judge: {type: sequential}``). A typo gets "did you mean" among the names valid at that place.
Nothing here mentions pydantic, dictionaries, instances or regular expressions.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from analyzer.policy.base import NAME_PATTERN
from analyzer.policy.fields import field_at, field_names, kinds_with_field, model_at, union_tags
from analyzer.policy.models import LABEL_NAME_PATTERN, Policy, url_instead_of_route
from analyzer.policy.percent import PercentForm, as_fraction
from analyzer.policy.strategy import REGION_PATTERN, STEP_KINDS, TOKEN_PATTERN
from analyzer.policy.traffic import LABEL_KEY_PATTERN, OBJECT_NAME_PATTERN, SERVICE_NAME_PATTERN

PathKey = tuple[str | int, ...]

MAPPING_EXAMPLES = {
    "judge": "judge: {type: sequential}",
    "analyze": "analyze: {duration: 10m} (or just analyze: 10m)",
    "post_promotion_analyze": "post_promotion_analyze: 10m",
    "pause": "pause: {duration: 5m} (or pause: 5m, or pause: {} to wait for a person)",
    "analysis": "analysis: {interval: 1m}",
    "traffic": "traffic: {router: gateway_api}",
    "sticky": "sticky: {cookie: canarist-split} (or sticky: {header: x-user-id})",
    "strategy": "strategy: {type: canary, steps: [...]}",
    "header": 'header: {name: x-canary, value: "1"}',
    "cookie": 'cookie: {name: canary, value: "1"}',
    "metrics": "- {name: error-ratio, kind: counts, errors: ..., total: ...}",
    "args": '- {name: route, default: ".*"}',
    "steps": "- set_weight: 10",
    "batches": "- {percent: 25, analyze: 5m}",
    "match": "- header: {name: x-canary, value: '1'}",
}
"""The form to write for a mapping, by the field (or, for a list's item, the list) it is under."""

PATTERN_WORDS = {
    NAME_PATTERN: "a name is lowercase letters, digits, '-', '_' and '.', starting and ending "
    "with a letter or digit, at most 63 characters",
    SERVICE_NAME_PATTERN: "a Service name is lowercase letters, digits and '-', starting with a "
    "letter, at most 63 characters",
    OBJECT_NAME_PATTERN: "a Kubernetes object name is lowercase letters, digits, '-' and '.'",
    LABEL_KEY_PATTERN: "a label key is letters, digits, '-', '_' and '.', optionally after a "
    "DNS prefix and '/' (app.kubernetes.io/version)",
    TOKEN_PATTERN: "a header or cookie name has no spaces, quotes or separators",
    REGION_PATTERN: "a region is letters, digits, '_' and '-' (KR, eu-west)",
    LABEL_NAME_PATTERN: "a Prometheus label name is letters, digits and '_', not starting "
    "with a digit",
}
"""Plain words for the patterns of the policy language, so no message shows a regex."""


def message_for(error: ErrorDetails, path: PathKey) -> str:
    """The message for one pydantic error at ``path`` (the path in the document)."""
    kind = error["type"]
    loc = tuple(error["loc"])
    context = error.get("ctx") or {}
    found = error.get("input")
    if kind == "extra_forbidden":
        return unknown_field(loc)
    if kind == "missing":
        return _missing(loc)
    if kind == "union_tag_invalid":
        return _unknown_tag(path, str(context.get("tag")), _quoted_list(context["expected_tags"]))
    if kind == "union_tag_not_found":
        field = str(context.get("discriminator", "type")).strip("'")
        tags = union_tags(Policy, loc, field)
        return f"missing {field}: say which {field} it is, one of {', '.join(tags)}"
    if kind == "literal_error" and "judge" in path:
        return _judge_for_kind(loc, found, _quoted_list(str(context.get("expected", ""))))
    if kind in ("literal_error", "enum"):
        return _not_one_of(path, found, _quoted_list(str(context.get("expected", ""))))
    if kind == "step_kind":
        return _step_kind(found)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        expected = f"expected a mapping such as `{_mapping_example(path)}`"
        if isinstance(found, str) and re.fullmatch(r"[\w-]+:\S.*", found):
            key, _, value = found.partition(":")
            return (
                f"{expected}, found the text {found!r}: a colon needs a space after it, "
                f"write `{key}: {value}`"
            )
        return f"{expected}, found {describe(found)}"
    if kind == "string_pattern_mismatch":
        return _pattern(str(context.get("pattern")), found)
    return _plain(error, path, found)


def unknown_field(loc: Sequence[str | int]) -> str:
    """``unknown field 'tolerence': did you mean tolerance?``, or the fields known there."""
    name = str(loc[-1]) if loc else ""
    model = model_at(Policy, loc[:-1])
    known = field_names(model) if model is not None else []
    folded = closest(name, known, fuzzy=False)
    if folded:
        return f"unknown field {name!r}: did you mean {folded}?"
    tag_field, elsewhere = kinds_with_field(Policy, loc[:-1], name)
    if elsewhere and tag_field:
        return (
            f"unknown field {name!r}: {tag_field} {loc[-2]} has no {name}; it is a field of "
            f"{tag_field} {' or '.join(elsewhere)}"
        )
    close = closest(name, known)
    if close:
        return f"unknown field {name!r}: did you mean {close}?"
    if known:
        return f"unknown field {name!r}; the fields here are {', '.join(known)}"
    return f"unknown field {name!r}"


def closest(word: str, known: Sequence[str], *, fuzzy: bool = True) -> str | None:
    """The known name ``word`` most likely meant: the same but for case, '-' and '_'
    (``setWeight``, ``failure-limit``), else (``fuzzy``) difflib's closest match."""
    folded = {_fold(name): name for name in known}
    if _fold(word) in folded:
        return folded[_fold(word)]
    if not fuzzy:
        return None
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    if matches:
        return matches[0]
    longer = [name for name in known if word and name.startswith(f"{word}_")]  # nan: nan_strategy
    return longer[0] if len(longer) == 1 else None


def describe(value: Any) -> str:
    """What a person wrote, in their words: the text 'x', the number 3, a list, nothing."""
    if value is None:
        return "nothing (the value is empty)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return f"the date {value.isoformat()} (quote it to write text)"
    return repr(value)


def _fold(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def _quoted_list(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


def _what(path: PathKey, field: str) -> str:
    """``judge``, ``strategy type``, ``metric kind``: what the tag or word names."""
    parents = [part for part in path[:-1] if isinstance(part, str)]
    if "judge" in path[-2:]:
        return "judge"
    if parents[-1:] == ["metrics"]:
        return f"metric {field}"
    return f"{parents[-1]} {field}" if parents else field


def _unknown_tag(path: PathKey, tag: str, expected: list[str]) -> str:
    what = _what(path, str(path[-1]) if path else "type")
    close = closest(tag, expected)
    hint = f": did you mean {close}?" if close else ""
    return f"unknown {what} {tag!r}{hint} (expected one of {', '.join(expected)})"


def _not_one_of(path: PathKey, found: Any, expected: list[str]) -> str:
    close = closest(str(found), expected) if isinstance(found, str) else None
    hint = f"; did you mean {close}?" if close else ""
    what = (
        f"unknown {path[-1]} {found!r}"
        if path and isinstance(found, str)
        else "found " + (describe(found))
    )
    return f"{what}{hint} (expected one of {', '.join(expected)})"


def _judge_for_kind(loc: Sequence[str | int], found: Any, expected: list[str]) -> str:
    """``judge: sequential`` on a threshold metric: say which judges its kind takes."""
    kind = loc[2] if len(loc) > 2 and loc[0] == "metrics" else "this kind of"
    example = (
        "judge: {type: threshold, max: 0.5}"
        if expected == ["threshold"]
        else (f"judge: {expected[0]}" if expected else "judge: {type: ...}")
    )
    return (
        f"judge {found!r} cannot judge a {kind} metric; use {' or '.join(expected)}: "
        f"write `{example}`"
    )


def _step_kind(found: Any) -> str:
    forms = "`set_weight: 25`, `pause: 5m` or `analyze: 10m`"
    if not isinstance(found, dict):
        return f"a step is one of {forms}; found {describe(found)}"
    present = [key for key in found if key in STEP_KINDS]
    if len(present) > 1:
        return (
            f"a step has exactly one of set_weight, pause or analyze, found {present}: "
            "write each as its own `- ` item"
        )
    guesses = [(key, closest(str(key), STEP_KINDS)) for key in found]
    named = [f"{key!r}: did you mean {close}?" for key, close in guesses if close]
    if named:
        return f"a step has exactly one of set_weight, pause or analyze; {'; '.join(named)}"
    return f"a step has exactly one of set_weight, pause or analyze: write {forms}"


def _mapping_example(path: PathKey) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return MAPPING_EXAMPLES.get(part, f"{part}: {{field: value}}")
    return "field: value"


def _missing(loc: Sequence[str | int]) -> str:
    field = field_at(Policy, loc)
    name = str(loc[-1]) if loc else ""
    what = f": {field.description}" if field is not None and field.description else ""
    example = MAPPING_EXAMPLES.get(name, "")
    if not what and example.startswith("- "):
        what = f": write `{name}:` with items such as `{example}`"
    elif not what and example:
        what = f": write `{example}`"
    return f"missing required field {name}{what}"


def _pattern(pattern: str, found: Any) -> str:
    words = PATTERN_WORDS.get(pattern, "this value has characters that are not allowed here")
    if pattern == NAME_PATTERN and isinstance(found, str):
        suggestion = re.sub(r"[^a-z0-9_.-]+", "-", found.lower()).strip("-_.")[:63]
        if suggestion and re.fullmatch(NAME_PATTERN, suggestion):
            return f"{words}: write {suggestion}, not {found!r}"
    return f"{words}; found {describe(found)}"


_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _bounds(field: FieldInfo | None) -> str:
    """``more than 0.5 and less than 1``: both ends of a field's range, as one phrase."""
    phrases = dict(_BOUNDS.values())
    given = {type(m).__name__.lower(): m for m in _metadata(field)}  # annotated_types' Ge, Lt...
    words = [f"{phrases[key]} {getattr(given[key], key):g}" for key in phrases if key in given]
    return " and ".join(words)


def _metadata(field: FieldInfo | None) -> list[Any]:
    """A field's constraints and markers, also those inside ``Annotated[...] | None``."""
    if field is None:
        return []
    found: list[Any] = []
    pending: list[Any] = [*field.metadata, field.annotation]
    while pending:
        item = pending.pop()
        if get_origin(item) is Annotated:
            pending.extend(get_args(item)[1:])
        elif isinstance(item, FieldInfo):
            pending.extend(item.metadata)
        elif get_args(item):
            pending.extend(get_args(item))
        else:
            found.append(item)
    return found


def _as_fraction(field: FieldInfo | None, found: Any) -> str:
    """``confidence: 95`` meant 95%: a fraction field says how to write that."""
    metadata = _metadata(field)
    fraction = any(isinstance(m, PercentForm) and m.convert is as_fraction for m in metadata)
    upper = [getattr(m, "le", getattr(m, "lt", None)) for m in metadata]
    at_most_one = any(isinstance(bound, int | float) and bound <= 1 for bound in upper)
    if fraction and at_most_one and isinstance(found, int | float) and 1 < found <= 100:
        return f": a fraction, so write {found / 100:g} or {found:g}%"
    return ""


def _plain(error: ErrorDetails, path: PathKey, found: Any) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind in _BOUNDS:
        field = field_at(Policy, loc)
        bounds = _bounds(field) or f"{_BOUNDS[kind][1]} {context.get(_BOUNDS[kind][0]):g}"
        about = f" ({field.description})" if field is not None and field.description else ""
        return f"must be {bounds}{about}; found {describe(found)}{_as_fraction(field, found)}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, found {describe(found)}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, found {describe(found)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, found {describe(found)}"
    if kind == "string_type":
        hint = ": quote it to make it text" if isinstance(found, int | float | date) else ""
        return f"expected text, found {describe(found)}{hint}"
    if kind == "list_type":
        if path == ("alerts",) and isinstance(found, str):
            return url_instead_of_route(found) or (
                f"expected a list, found {describe(found)}: write `alerts: [{found}]`"
            )
        return f"expected a list (`- item` lines, or [a, b]), found {describe(found)}"
    if kind == "too_short":
        least = context.get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}, found none"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message
