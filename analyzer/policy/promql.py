"""PromQL templates that cannot be broken out of, and label selectors that always parse.

A policy's queries are templates: ``sum(rate(requests_total{ {{ selector }} }[{{ interval }}]))``.
Values come from rollout jobs written by other services, so every substitution is made safe here:

- ``{{ selector }}`` is rendered from parsed label matchers, each value re-escaped; it may only
  stand outside string literals.
- ``{{ interval }}`` is the analysis interval, rendered as a PromQL duration.
- a job's named args inside a quoted string literal are escaped for that literal; outside a
  literal they must be a plain number or a duration, or rendering is refused.

The scanner tracks PromQL's three literal forms ("…", '…', `…`) and ``#`` comments, so it knows the
context of every placeholder before any value is seen.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from analyzer.errors import SelectorError, TemplateError
from analyzer.policy.durations import format_duration

BUILTIN_VARIABLES = frozenset({"selector", "interval"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_BARE_VALUE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|([0-9]+(ms|s|m|h|d|w|y))+")
_MATCHER_OPS = ("=~", "!~", "!=", "=")
_SHOWN_CHARS = 64  # of a value quoted back in a message: enough to recognise it, never megabytes


def shown(text: str, limit: int = _SHOWN_CHARS) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters: a job's values come from other
    services and may be huge, so an error names them without echoing them back whole."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class Context(Enum):
    """Where a placeholder stands in the query text."""

    CODE = "code"
    DOUBLE_QUOTED = '"'
    SINGLE_QUOTED = "'"
    RAW = "`"
    COMMENT = "#"


def scan_contexts(text: str) -> list[tuple[int, int, Context]]:
    """Split ``text`` into (start, end, context) runs following PromQL's lexical rules."""
    runs: list[tuple[int, int, Context]] = []
    start, position, context = 0, 0, Context.CODE
    while position < len(text):
        char = text[position]
        if context is Context.CODE:
            opens = {'"': Context.DOUBLE_QUOTED, "'": Context.SINGLE_QUOTED, "`": Context.RAW}
            if char in opens or char == "#":
                runs.append((start, position, Context.CODE))
                start, context = position, opens.get(char, Context.COMMENT)
        elif context is Context.COMMENT:
            if char == "\n":
                runs.append((start, position, context))
                start, context = position, Context.CODE
        elif char == "\\" and context is not Context.RAW:
            position += 1  # the escaped character cannot close the literal
        elif char == context.value:
            runs.append((start, position + 1, context))
            start, context = position + 1, Context.CODE
        position += 1
    if context in (Context.DOUBLE_QUOTED, Context.SINGLE_QUOTED, Context.RAW):
        raise TemplateError(f"unterminated string literal starting at character {start}")
    runs.append((start, len(text), context))
    return [run for run in runs if run[1] > run[0]]


def escape_string(value: str, quote: str = '"') -> str:
    """Escape ``value`` for the inside of a PromQL ``quote``-delimited literal (Go rules)."""
    out = []
    for char in value:
        if char in ("\\", quote):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            raise TemplateError(f"control character {ord(char):#04x} is not allowed in a value")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class Matcher:
    """One label matcher: ``version="v2"``, ``code=~"5.."``."""

    label: str
    op: str
    value: str

    def render(self) -> str:
        return f'{self.label}{self.op}"{escape_string(self.value)}"'


@dataclass(frozen=True)
class Selector:
    """The label matchers that pick one version's series, e.g. ``app="checkout",version="v2"``."""

    matchers: tuple[Matcher, ...]

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Selector:
        for name in labels:
            if not _LABEL_NAME.fullmatch(name):
                raise SelectorError(f"{name!r} is not a valid Prometheus label name")
        return cls(tuple(Matcher(name, "=", value) for name, value in sorted(labels.items())))

    @classmethod
    def parse(cls, text: str) -> Selector:
        """Parse ``label="value",label2=~"re"`` (Prometheus' matcher syntax, braces optional)."""
        body = text.strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1]
        matchers, position = [], 0
        while True:
            position = _skip_spaces(body, position)
            if position >= len(body):
                break
            name = _LABEL_NAME.match(body, position)
            if not name:
                raise SelectorError(
                    f"expected a label name at {shown(body[position:])} in {shown(text)}"
                )
            position = _skip_spaces(body, name.end())
            op = next((op for op in _MATCHER_OPS if body.startswith(op, position)), None)
            if op is None:
                raise SelectorError(f"expected one of = != =~ !~ after {name.group()!r}")
            value, position = _read_quoted(body, _skip_spaces(body, position + len(op)), text)
            matchers.append(Matcher(name.group(), op, value))
            position = _skip_spaces(body, position)
            if position < len(body):
                if body[position] != ",":
                    raise SelectorError(f"expected ',' between matchers in {shown(text)}")
                position += 1
        if not matchers:
            raise SelectorError("a selector needs at least one label matcher")
        return cls(tuple(matchers))

    def render(self) -> str:
        return ",".join(matcher.render() for matcher in self.matchers)


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _read_quoted(body: str, position: int, text: str) -> tuple[str, int]:
    """Read a "…" or '…' literal at ``position``; return its decoded value and the end."""
    if position >= len(body) or body[position] not in "\"'":
        raise SelectorError(f"expected a quoted value in {shown(text)}")
    quote, chars, position = body[position], [], position + 1
    decode = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
    while position < len(body):
        char = body[position]
        if char == "\\":
            escaped = body[position + 1 : position + 2]
            if escaped not in decode:
                raise SelectorError(f"unsupported escape \\{escaped} in {shown(text)}")
            chars.append(decode[escaped])
            position += 2
        elif char == quote:
            return "".join(chars), position + 1
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            # Prometheus refuses them in a label value; refused here, they fail no look later.
            raise SelectorError(
                f"control character {ord(char):#04x} in a label value of {shown(text)}"
            )
        else:
            chars.append(char)
            position += 1
    raise SelectorError(f"unterminated quoted value in {shown(text)}")


@dataclass(frozen=True)
class Placeholder:
    name: str
    start: int
    end: int
    context: Context


@dataclass(frozen=True)
class PromQLTemplate:
    """A parsed query template; ``render`` is the only way to turn it into PromQL."""

    text: str
    placeholders: tuple[Placeholder, ...]

    @classmethod
    def parse(cls, text: str) -> PromQLTemplate:
        """``text`` parsed; the same text is parsed once (the last few hundred are kept), so a
        look does not parse its policy's templates again. Templates are immutable: sharing one
        is safe."""
        if cls is PromQLTemplate:
            return _parse_cached(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> PromQLTemplate:
        runs = scan_contexts(text)
        placeholders = []
        for match in _PLACEHOLDER.finditer(text):
            context = next(ctx for start, end, ctx in runs if start <= match.start() < end)
            name = match.group(1)
            if context in (Context.RAW, Context.COMMENT):
                kind = "a `raw` string" if context is Context.RAW else "a comment"
                raise TemplateError(f"{{{{ {name} }}}} cannot stand inside {kind}")
            if name in BUILTIN_VARIABLES and context is not Context.CODE:
                raise TemplateError(f"{{{{ {name} }}}} must stand outside string literals")
            placeholders.append(Placeholder(name, match.start(), match.end(), context))
        # "{{" never occurs in valid PromQL, so any left after the placeholders is a typo.
        if "{{" in _PLACEHOLDER.sub("", text):
            raise TemplateError("malformed placeholder: write {{ name }} with a plain name")
        return cls(text, tuple(placeholders))

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(placeholder.name for placeholder in self.placeholders)

    def render(
        self, *, selector: Selector, interval: timedelta, args: Mapping[str, str] | None = None
    ) -> str:
        values = dict(args or {})
        out, position = [], 0
        for placeholder in self.placeholders:
            out.append(self.text[position : placeholder.start])
            out.append(_substitute(placeholder, selector, interval, values))
            position = placeholder.end
        out.append(self.text[position:])
        return "".join(out)


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str) -> PromQLTemplate:
    return PromQLTemplate._parse(text)


def _substitute(
    placeholder: Placeholder, selector: Selector, interval: timedelta, args: Mapping[str, str]
) -> str:
    if placeholder.name == "selector":
        return selector.render()
    if placeholder.name == "interval":
        return format_duration(interval)
    if placeholder.name not in args:
        raise TemplateError(f"no value given for {{{{ {placeholder.name} }}}}")
    value = str(args[placeholder.name])
    if placeholder.context is Context.CODE:
        if not _SAFE_BARE_VALUE.fullmatch(value):
            raise TemplateError(
                f"{placeholder.name}={shown(value)} stands outside quotes in the query, so it "
                "must be a number or a duration; quote the placeholder to pass text"
            )
        return value
    try:
        return escape_string(value, placeholder.context.value)
    except TemplateError as exc:
        raise TemplateError(f"{placeholder.name}={shown(value)}: {exc}") from None
