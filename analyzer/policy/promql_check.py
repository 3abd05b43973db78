"""Every query of a policy parsed as PromQL when the policy is loaded, not when it first runs.

A template that does not parse, or parses into a shape its metric cannot use, would otherwise
load, pass ``canarist policy validate``, and come back at the first look as ``Prometheus
answered HTTP 400``: an ERROR measurement pointing at the rendered query, never at the line of
the policy. Here each template is rendered with stand-in values (a stand-in selector, the
policy's ``analysis.interval``, each arg's default or a stand-in of the kind its place needs) and
parsed by the Rust PromQL parser (``promql-parser``, imported in this module only). What it
refuses is said in the policy's words at the field, so the loader gives file and line.

The shape rules, each with what to write instead:

- every query returns an instant vector: one value per series per instant, which a range query
  can evaluate. A range vector (``x[5m]``, a subquery) or a scalar or string is refused.
- a histogram's ``buckets`` keeps the ``le`` label, so the buckets can be told apart
  (``sum by (le) (…)``); an aggregation, a function or a vector match that certainly drops it
  is refused. Where the labels cannot be known (a label_replace, say) the query is let through.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import promql_parser

from analyzer.errors import PolicyProblem, TemplateError
from analyzer.policy.metrics import HistogramMetric, MetricBase
from analyzer.policy.promql import Context, PromQLTemplate, Selector, scan_contexts

STAND_IN_SELECTOR = Selector.from_labels({"app": "canarist-check", "version": "v1"})
"""The selector a template is rendered with to be checked: any valid matchers parse alike."""

_STAND_IN_TEXT = "canarist-check"
_STAND_IN_NUMBER = "1"
_STAND_IN_DURATION = "5m"
_FRAGMENT_CHARS = 24
_KEEPS_INPUT_LABELS = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})
_OPENERS = {"(": ")", "{": "}", "[": "]"}
# PromQL's functions and aggregation operators, for "did you mean" after an unknown function.
# fmt: off
_KNOWN_FUNCTIONS = (
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg",
    "avg_over_time", "bottomk", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos",
    "cosh", "count", "count_over_time", "count_values", "day_of_month", "day_of_week",
    "day_of_year", "days_in_month", "deg", "delta", "deriv", "exp", "floor", "group",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max",
    "max_over_time", "min", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile", "quantile_over_time", "rad", "rate", "resets", "round",
    "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "stddev", "stddev_over_time",
    "stdvar", "stdvar_over_time", "sum", "sum_over_time", "tan", "tanh", "time", "timestamp",
    "topk", "vector", "year", "double_exponential_smoothing", "first_over_time", "histogram_avg",
    "info", "limitk", "limit_ratio", "sort_by_label", "sort_by_label_desc",
)
# fmt: on


def _register_prometheus_2_functions() -> None:
    """The parser follows Prometheus 3, which renamed holt_winters (Prometheus 2, the version
    Debian ships and the tests run) to double_exponential_smoothing: both are accepted, as the
    Prometheus a policy runs against decides. Registration is process-wide; once is enough."""
    value = promql_parser.ValueType
    holt_winters = promql_parser.Function(
        "holt_winters", [value.Matrix, value.Scalar, value.Scalar], value.Vector
    )
    with contextlib.suppress(ValueError):  # a parser that knows it already
        promql_parser.register_extra_functions([holt_winters])


_register_prometheus_2_functions()


def query_problems(
    metrics: Sequence[MetricBase], arg_defaults: Mapping[str, str | None], interval: timedelta
) -> Iterator[PolicyProblem]:
    """The PromQL problems of every metric's templates, each at its field."""
    for index, metric in enumerate(metrics):
        for field, text in metric.templates().items():
            message = template_problem(
                text, arg_defaults, interval, buckets=_is_buckets(metric, field)
            )
            if message is not None:
                yield PolicyProblem(("metrics", index, field), message)


def _is_buckets(metric: MetricBase, field: str) -> bool:
    return isinstance(metric, HistogramMetric) and field == "buckets"


def render_for_check(
    text: str, arg_defaults: Mapping[str, str | None], interval: timedelta, selector: Selector
) -> str:
    """``text`` rendered as it could run: each arg by its default, else a stand-in of the kind its
    place needs (a duration after ``[``, ``:`` or ``offset``, a number elsewhere, text in quotes).
    TemplateError when it cannot be (an unknown variable, a default unfit for its place)."""
    template = PromQLTemplate.parse(text)
    values: dict[str, str] = {}
    for placeholder in template.placeholders:
        default = arg_defaults.get(placeholder.name)
        if default is not None:
            values[placeholder.name] = default
        elif placeholder.context is not Context.CODE:
            values.setdefault(placeholder.name, _STAND_IN_TEXT)
        else:
            before = text[: placeholder.start].rstrip()
            wants_duration = before.endswith(("[", ":")) or before.lower().endswith("offset")
            # outside quotes wins: a number or a duration also stands inside a quoted string
            values[placeholder.name] = _STAND_IN_DURATION if wants_duration else _STAND_IN_NUMBER
    return template.render(selector=selector, interval=interval, args=values)


def template_problem(
    text: str, arg_defaults: Mapping[str, str | None], interval: timedelta, *, buckets: bool
) -> str | None:
    """What is wrong with this template as PromQL, in the policy's words; None when nothing is.

    Variables the policy does not declare are checks.py's to report: their template is skipped."""
    try:
        template = PromQLTemplate.parse(text)
    except TemplateError:
        return None  # base.check_template has refused it already, at the same field
    if any(
        p.name not in arg_defaults and p.name not in ("selector", "interval")
        for p in template.placeholders
    ):
        return None
    try:
        rendered = render_for_check(text, arg_defaults, interval, STAND_IN_SELECTOR)
    except TemplateError as exc:
        return f"cannot be rendered with the args' defaults: {exc}"
    try:
        expr = promql_parser.parse(rendered)
    except ValueError as exc:
        return f"PromQL does not parse: {_parse_message(str(exc), rendered)}"
    except BaseException as exc:  # pyo3 raises a Rust panic as PanicException, a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        return f"the PromQL parser failed on this query ({exc}); please report it"
    return _shape_problem(expr, buckets=buckets)


def _parse_message(reason: str, rendered: str) -> str:
    """The parser's reason, with where it stands when the parser does not say (it never does)."""
    if reason.startswith("unknown function with name "):
        name = reason.removeprefix("unknown function with name ").strip("'")
        close = difflib.get_close_matches(name, _KNOWN_FUNCTIONS, n=1, cutoff=0.75)
        return f"unknown function {name!r}" + (f"; did you mean {close[0]}?" if close else "")
    if reason == "ranges only allowed for vector selectors":
        return (
            "a range [...] may only follow a metric selector, as in "
            "rate(metric{...}[{{ interval }}]); for a function's values over time use a "
            "subquery, e.g. max_over_time(rate(metric{...}[1m])[{{ interval }}:])"
        )
    if reason.startswith("expected type matrix in call to function "):
        function = reason.split("'")[1] if reason.count("'") >= 2 else "the function"
        written = f"{function}(metric{{...}}[{{{{ interval }}}}])"
        return f"{function}() takes a range vector: write {written}"
    position = _unbalanced_at(rendered) if _is_about_brackets(reason) else None
    if position is None:
        return reason
    line = rendered.count("\n", 0, position) + 1
    column = position - (rendered.rfind("\n", 0, position) + 1) + 1
    where = f"column {column}" if line == 1 else f"line {line}, column {column}"
    fragment = rendered[max(0, position + 1 - _FRAGMENT_CHARS) : position + 1].lstrip()
    return f"{reason} at {where} of the rendered query (up to it: ...{fragment!r})"


def _is_about_brackets(reason: str) -> bool:
    words = ("parenthesis", "brace", "bracket")
    return any(word in reason for word in words)


def _unbalanced_at(text: str) -> int | None:
    """The offset of the first closer without its opener, else of the last opener left open,
    outside string literals and comments."""
    try:
        runs = scan_contexts(text)
    except TemplateError:
        return None
    open_at: list[tuple[int, str]] = []
    for start, end, context in runs:
        if context is not Context.CODE:
            continue
        for position in range(start, end):
            char = text[position]
            if char in _OPENERS:
                open_at.append((position, _OPENERS[char]))
            elif char in _OPENERS.values():
                if not open_at or open_at[-1][1] != char:
                    return position
                open_at.pop()
    return open_at[-1][0] if open_at else None


def _shape_problem(expr: Any, *, buckets: bool) -> str | None:
    kind = _value_type(expr)
    if kind == "matrix":
        return (
            "returns a range vector (several samples per series), but a query must return one "
            "value per series per instant: wrap it in a function over time, e.g. "
            "increase(metric{...}[{{ interval }}]) or avg_over_time(...)"
        )
    if kind in ("scalar", "string"):
        return (
            f"returns a {kind}, which has no series to tell the versions apart: return an instant "
            "vector, e.g. sum(...) rather than scalar(sum(...))"
        )
    if buckets and not _keeps_label(expr, "le"):
        if _calls(expr, "histogram_quantile"):
            return (
                "computes a quantile with histogram_quantile(), which drops the le label the "
                "buckets are judged by: give the buckets themselves, "
                "sum by (le) (increase(..._bucket{...}[{{ interval }}])), or use kind: series "
                "for the quantile"
            )
        return (
            "drops the le label, so no quantile can be computed: write sum by (le) (...) "
            "(or sum by (le, pod) (...) to judge pods one by one)"
        )
    return None


def _value_type(expr: Any) -> str:
    """``vector``, ``matrix``, ``scalar`` or ``string``: what ``expr`` evaluates to."""
    if isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return _value_type(expr.expr)
    if isinstance(expr, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        return "matrix"
    if isinstance(expr, promql_parser.NumberLiteral):
        return "scalar"
    if isinstance(expr, promql_parser.StringLiteral):
        return "string"
    if isinstance(expr, promql_parser.Call):
        return str(expr.func.return_type).removeprefix("ValueType.").lower()
    if isinstance(expr, promql_parser.BinaryExpr):
        sides = (_value_type(expr.lhs), _value_type(expr.rhs))
        return "vector" if "vector" in sides else "scalar"
    return "vector"  # a vector selector, an aggregation


def _keeps_label(expr: Any, label: str) -> bool:
    """False when ``expr`` certainly drops ``label``; True when it keeps it or may."""
    if isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return _keeps_label(expr.expr, label)
    if isinstance(expr, promql_parser.SubqueryExpr):
        return _keeps_label(expr.expr, label)
    if isinstance(expr, promql_parser.NumberLiteral | promql_parser.StringLiteral):
        return False
    if isinstance(expr, promql_parser.AggregateExpr):
        return _aggregation_keeps(expr, label)
    if isinstance(expr, promql_parser.Call):
        return _call_keeps(expr, label)
    if isinstance(expr, promql_parser.BinaryExpr):
        return _binary_keeps(expr, label)
    return True  # a selector: its series carry every label they have


def _aggregation_keeps(expr: Any, label: str) -> bool:
    if str(expr.op) in _KEEPS_INPUT_LABELS:
        return _keeps_label(expr.expr, label)
    modifier = expr.modifier
    if modifier is None:
        return False  # sum(...) without by: one series, no labels
    listed = label in modifier.labels
    kept = listed if modifier.type == promql_parser.AggModifierType.By else not listed
    return kept and _keeps_label(expr.expr, label)


def _call_keeps(expr: Any, label: str) -> bool:
    name = expr.func.name
    if name == "histogram_quantile" and label == "le":
        return False
    if name in ("label_replace", "label_join"):
        target = expr.args[1] if len(expr.args) > 1 else None
        if isinstance(target, promql_parser.StringLiteral) and target.val == label:
            return True
    series = [
        arg
        for arg in expr.args
        if not isinstance(arg, promql_parser.NumberLiteral | promql_parser.StringLiteral)
    ]
    return bool(series) and _keeps_label(series[-1], label)


def _binary_keeps(expr: Any, label: str) -> bool:
    lhs, rhs = _value_type(expr.lhs) == "vector", _value_type(expr.rhs) == "vector"
    if not (lhs and rhs):
        return _keeps_label(expr.lhs if lhs else expr.rhs, label)
    operator = str(expr.op)
    if operator == "or":
        return _keeps_label(expr.lhs, label) or _keeps_label(expr.rhs, label)
    modifier = expr.modifier
    if modifier is None or operator in ("and", "unless"):
        return _keeps_label(expr.lhs, label)
    card = modifier.card
    if card == promql_parser.VectorMatchCardinality.ManyToOne:
        return label in (modifier.group_labels or []) or _keeps_label(expr.lhs, label)
    if card == promql_parser.VectorMatchCardinality.OneToMany:
        return label in (modifier.group_labels or []) or _keeps_label(expr.rhs, label)
    matching = modifier.matching
    if matching is not None and matching.type == promql_parser.LabelModifierType.Include:
        return label in matching.labels and _keeps_label(expr.lhs, label)  # on(...) keeps those
    if matching is not None and label in matching.labels:
        return False  # ignoring(le) drops it
    return _keeps_label(expr.lhs, label)


def _calls(expr: Any, function: str) -> bool:
    found = False

    def visit(node: Any) -> bool:
        nonlocal found
        if isinstance(node, promql_parser.Call) and node.func.name == function:
            found = True
            return False
        return True

    promql_parser.walk(expr, visit)
    return found
