"""Load a policy from YAML and report every problem as ``FILE:LINE: path.to.field: message``.

PyYAML's composer keeps the line of every node; we build plain data from the node tree, keeping a
map from each field's path to the line where it was written. Pydantic's error locations also carry
union tags (``strategy.canary.steps``); they are dropped by walking the location through the data,
so the reported path is the one in the file. Duplicate keys, which YAML silently resolves to the
last one, are reported too: in a policy they are always a mistake. Reading the file, and the
limits on what a file may cost (size, UTF-8, nesting, aliases, metric and step counts), are
reading.py's: a hostile file is refused with a located problem, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from analyzer.errors import PolicyError, PolicyProblem
from analyzer.policy.base import policy_name
from analyzer.policy.models import Policy
from analyzer.policy.reading import (
    MAX_METRICS,
    MAX_STEPS,
    PathKey,
    build_data,
    compose,
    line_of,
    read_policy_file,
)


def load_policy(path: str | Path) -> Policy:
    """Read and validate one policy file; raise PolicyError listing every problem found."""
    source = str(path)
    text, problems = read_policy_file(Path(path))
    if problems:
        raise PolicyError(source, problems)
    return load_policy_text(text, source)


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    data, lines, problems = _compose(text)
    if problems:
        raise PolicyError(source, problems)
    if not isinstance(data, dict):
        raise PolicyError(source, [PolicyProblem((), "a policy is a YAML mapping of fields", 1)])
    too_many = _too_many(data, lines)
    if too_many:
        raise PolicyError(source, too_many)
    try:
        policy, semantic = Policy.checked(data)
    except ValidationError as exc:
        problems = [_problem_from_error(error, data, lines) for error in exc.errors()]
        raise PolicyError(source, problems) from None
    if semantic:
        located = [PolicyProblem(p.path, p.message, line_of(p.path, lines)) for p in semantic]
        raise PolicyError(source, located)
    return policy


def _compose(text: str) -> tuple[Any, dict[PathKey, int], list[PolicyProblem]]:
    root, problems = compose(text)
    if problems:
        return None, {}, problems
    if root is None:
        return None, {}, [PolicyProblem((), "the file is empty: a policy is a YAML mapping", 1)]
    return build_data(root)


def _too_many(data: dict[Any, Any], lines: dict[PathKey, int]) -> list[PolicyProblem]:
    """Lists the analysis and the engine walk at every look, bounded before validation."""
    strategy = data.get("strategy")
    bounded: list[tuple[PathKey, Any, int, str]] = [
        (("metrics",), data.get("metrics"), MAX_METRICS, "metrics"),
    ]
    if isinstance(strategy, dict):
        for field in ("steps", "batches"):
            bounded.append((("strategy", field), strategy.get(field), MAX_STEPS, field))
    problems = []
    for path, value, limit, noun in bounded:
        if isinstance(value, list) and len(value) > limit:
            first_over = (*path, limit)
            message = f"a policy has at most {limit} {noun}; this is number {limit + 1}"
            problems.append(PolicyProblem(first_over, message, line_of(first_over, lines)))
    return problems


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


def _problem_from_error(error: ErrorDetails, data: Any, lines: dict[PathKey, int]) -> PolicyProblem:
    path = _document_path(tuple(error["loc"]), data)
    if error["type"] == "union_tag_invalid":
        tag_field = str((error.get("ctx") or {}).get("discriminator", "")).strip("'")
        if isinstance(_value_at(path, data), dict):
            path = (*path, tag_field)  # point at `kind:` / `type:` itself
    return PolicyProblem(path, _message(error, path), line_of(path, lines))


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
    class_name = str(context.get("class_name", ""))
    if kind == "model_type" and class_name:  # pydantic names the class; say the policy's name
        message = message.replace(class_name, policy_name(class_name))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    shown = error.get("input")
    if kind != "value_error" and shown is not None and not isinstance(shown, dict | list):
        return f"{message} (got {shown!r})"
    return message
