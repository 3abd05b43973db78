"""Load a policy from YAML and report every problem as ``FILE:LINE: path.to.field: message``.

PyYAML's composer keeps the line of every node; we build plain data from the node tree, keeping a
map from each field's path to the line where it was written. Pydantic's error locations also carry
union tags (``strategy.canary.steps``); they are dropped by walking the location through the data,
so the reported path is the one in the file. Duplicate keys, which YAML silently resolves to the
last one, are reported too: in a policy they are always a mistake. Reading the file, and the
limits on what a file may cost (size, UTF-8, nesting, aliases, metric and step counts), are
reading.py's: a hostile file is refused with a located problem, never a traceback.

Every problem is reported at once, sorted by line: what could not be read, each field's problem
(in the policy's words, messages.py) and the cross-field checks (checks.py). A check needs some
sections valid; when others are not, each section is validated on its own and every check whose
sections are valid still runs, so fixing the reported problems never reveals new ones behind them.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from analyzer.errors import PolicyError, PolicyProblem
from analyzer.policy.checks import (
    duplicate_metric_names,
    metric_problems,
    strategy_problems,
    template_problems,
    traffic_problems,
)
from analyzer.policy.messages import closest, message_for
from analyzer.policy.metrics import AnyMetric, Metric
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

Problems = list[PolicyProblem]


def load_policy(path: str | Path) -> Policy:
    """Read and validate one policy file; raise PolicyError listing every problem found."""
    source = str(path)
    text, problems = read_policy_file(Path(path))
    if problems:
        raise PolicyError(source, problems)
    return load_policy_text(text, source)


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    data, lines, problems = _compose(text)
    if problems and not isinstance(data, dict):
        raise PolicyError(source, problems)
    if not isinstance(data, dict):
        raise PolicyError(source, [PolicyProblem((), "a policy is a YAML mapping of fields", 1)])
    too_many = _too_many(data, lines)
    if too_many:
        raise PolicyError(source, too_many)
    policy, found = _validated(data, lines)
    unread = {problem.path for problem in problems}  # a value that could not be read is None
    problems += [problem for problem in found if problem.path not in unread]
    if problems or policy is None:
        raise PolicyError(source, sorted(problems, key=_reading_order))
    return policy


def _validated(data: dict[Any, Any], lines: dict[PathKey, int]) -> tuple[Policy | None, Problems]:
    """The policy, or every problem: each field's, and the cross-field checks that the sections
    they need (each validated on its own) allow, so fixing one problem never reveals another."""
    try:
        policy, semantic = Policy.checked(data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = [
            _problem_from_error(error, data, lines)
            for error in errors
            if not _explained_by_a_typo(error, errors)
        ]
        return None, problems + _located(_cross_field_anyway(data), lines)
    return policy, _located(semantic, lines)


def _located(problems: Problems, lines: dict[PathKey, int]) -> Problems:
    return [PolicyProblem(p.path, p.message, line_of(p.path, lines)) for p in problems]


def _reading_order(problem: PolicyProblem) -> tuple[bool, int]:
    return problem.line is None, problem.line or 0


def _cross_field_anyway(data: dict[Any, Any]) -> Problems:
    """The cross-field checks of a policy with field errors, each where its sections are valid;
    duplicate metric names are read from the names as written when a metric is invalid."""
    sections = {name: _section(name, data) for name in SECTIONS}
    valid = {name: value for name, value in sections.items() if value is not _INVALID}
    problems: Problems = []
    args = {"args", "analysis"} <= valid.keys()
    defaults = {arg.name: arg.default for arg in valid["args"]} if args else {}
    interval = valid["analysis"].interval if args else None
    if "metrics" in valid and interval is not None:
        problems += metric_problems(valid["metrics"], defaults, interval)
    elif isinstance(data.get("metrics"), list):
        names = [m.get("name") if isinstance(m, dict) else None for m in data["metrics"]]
        problems += duplicate_metric_names(names)
        if interval is not None:
            problems += _each_valid_metric(data["metrics"], defaults, interval)
    if {"strategy", "analysis"} <= valid.keys():
        problems += strategy_problems(valid["strategy"], valid["analysis"].interval)
    if {"strategy", "traffic", "analysis"} <= valid.keys():
        analysis = valid["analysis"]
        problems += traffic_problems(valid["strategy"], valid["traffic"], analysis.baseline)
    return problems


def _each_valid_metric(
    metrics: list[Any], arg_defaults: dict[str, str | None], interval: timedelta
) -> Problems:
    """The template checks of each metric that is valid on its own, at its own index."""
    problems: Problems = []
    for index, item in enumerate(metrics):
        try:
            metric = _METRIC.validate_python(item)
        except ValidationError:
            continue
        for problem in template_problems([metric], arg_defaults, interval):  # at metrics[0]
            problems.append(PolicyProblem(("metrics", index, *problem.path[2:]), problem.message))
    return problems


_METRIC: TypeAdapter[AnyMetric] = TypeAdapter(Metric)
SECTIONS = ("args", "analysis", "metrics", "strategy", "traffic")
_INVALID = object()


def _section(name: str, data: dict[Any, Any]) -> Any:
    field = Policy.model_fields[name]
    if name not in data:  # a required one is reported missing; the checks needing it skip
        return _INVALID if field.is_required() else field.get_default(call_default_factory=True)
    try:
        return _section_adapter(name).validate_python(data[name])
    except ValidationError:
        return _INVALID


@cache
def _section_adapter(name: str) -> TypeAdapter[Any]:
    field = Policy.model_fields[name]
    section: Any = Annotated[field.annotation, field]  # its type with its constraints
    return TypeAdapter(section)


def _explained_by_a_typo(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """A required field reported missing because it was misspelt: the unknown field's "did you
    mean" says it, once."""
    if error["type"] != "missing":
        return False
    loc = tuple(error["loc"])
    return any(
        other["type"] == "extra_forbidden"
        and tuple(other["loc"][:-1]) == loc[:-1]
        and closest(str(other["loc"][-1]), [str(loc[-1])]) is not None
        for other in errors
    )


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
    return PolicyProblem(path, message_for(error, path), line_of(path, lines))
