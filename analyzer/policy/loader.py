"""Load a policy from YAML and report every problem as ``FILE:LINE: path.to.field: message``.

PyYAML's composer keeps the line of every node; we build plain data from the node tree, keeping a
map from each field's path to the line where it was written. Pydantic's error locations also carry
union tags (``strategy.canary.steps``); they are dropped by walking the location through the data,
so the reported path is the one in the file. Duplicate keys, which YAML silently resolves to the
last one, are reported too: in a policy they are always a mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from analyzer.errors import PolicyError, Problem
from analyzer.policy.models import Policy

PathKey = tuple[str | int, ...]


def load_policy(path: str | Path) -> Policy:
    """Read and validate one policy file; raise PolicyError listing every problem found."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, [Problem((), f"cannot read file: {exc.strerror}")]) from exc
    return load_policy_text(text, source)


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    data, lines, problems = _compose(text)
    if problems:
        raise PolicyError(source, problems)
    if not isinstance(data, dict):
        raise PolicyError(source, [Problem((), "a policy is a YAML mapping of fields", 1)])
    try:
        policy, semantic = Policy.checked(data)
    except ValidationError as exc:
        problems = [_problem_from_error(error, data, lines) for error in exc.errors()]
        raise PolicyError(source, problems) from None
    if semantic:
        located = [Problem(p.path, p.message, _line_of(p.path, lines)) for p in semantic]
        raise PolicyError(source, located)
    return policy


def _compose(text: str) -> tuple[Any, dict[PathKey, int], list[Problem]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return None, {}, [Problem((), f"YAML syntax: {exc.problem or exc}", line)]
    if root is None:
        return None, {}, [Problem((), "the file is empty: a policy is a YAML mapping", 1)]
    lines: dict[PathKey, int] = {}
    problems: list[Problem] = []
    data = _build(root, (), lines, problems)
    return data, lines, problems


def _build(
    node: yaml.Node, path: PathKey, lines: dict[PathKey, int], problems: list[Problem]
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            key_path = (*path, key)
            if key in result:
                problems.append(
                    Problem(key_path, f"duplicate key {key!r}", key_node.start_mark.line + 1)
                )
                continue
            lines[key_path] = key_node.start_mark.line + 1
            result[key] = _build(value_node, key_path, lines, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), lines, problems) for index, item in enumerate(node.value)
        ]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _line_of(path: PathKey, lines: dict[PathKey, int]) -> int | None:
    """The line of ``path``, or of its nearest ancestor written in the file (for missing fields)."""
    for length in range(len(path), -1, -1):
        if path[:length] in lines:
            return lines[path[:length]]
    return None


def _document_path(loc: tuple[str | int, ...], data: Any) -> PathKey:
    """Drop the union tags pydantic puts into error locations, keeping the path in the document."""
    path: list[str | int] = []
    current = data
    for position, part in enumerate(loc):
        is_last = position == len(loc) - 1
        in_mapping = isinstance(current, dict) and part in current
        in_sequence = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_mapping or in_sequence:
            path.append(part)
            current = current[part]
        elif is_last and isinstance(current, dict):
            path.append(part)  # a missing field: named, though not in the file
    return tuple(path)


def _value_at(path: PathKey, data: Any) -> Any:
    for part in path:
        data = data[part]
    return data


def _problem_from_error(error: ErrorDetails, data: Any, lines: dict[PathKey, int]) -> Problem:
    path = _document_path(tuple(error["loc"]), data)
    if error["type"] == "union_tag_invalid":
        tag_field = str((error.get("ctx") or {}).get("discriminator", "")).strip("'")
        if isinstance(_value_at(path, data), dict):
            path = (*path, tag_field)  # point at `kind:` / `type:` itself
    return Problem(path, _message(error, path), _line_of(path, lines))


def _message(error: ErrorDetails, path: PathKey) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown field {path[-1]!r}" if path else "unknown field"
    if kind == "missing":
        return "missing required field"
    if kind == "union_tag_invalid":
        what = "judge" if "judge" in path[-2:] else str(context.get("discriminator", ""))
        expected = context.get("expected_tags")
        return f"unknown {what.strip(chr(39))} {context.get('tag')!r}; expected one of {expected}"
    if kind == "union_tag_not_found":
        return f"missing {str(context.get('discriminator', 'type')).strip(chr(39))}: say which kind"
    if kind == "literal_error" and "judge" in path:
        expected = context.get("expected")
        return f"judge {error['input']!r} cannot judge this kind of metric; use {expected}"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    shown = error.get("input")
    if kind != "value_error" and shown is not None and not isinstance(shown, dict | list):
        return f"{message} (got {shown!r})"
    return message
