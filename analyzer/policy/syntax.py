"""YAML syntax errors in plain words: where, the likely cause, and the line as written.

PyYAML says what its parser expected (``expected <block end>, but found '?'``); a person needs to
know that line 5 is indented two spaces less than the fields it belongs with. The causes below
are the ones people make when writing a policy by hand: a tab, a missing colon, a colon inside a
value, indentation that lines up with nothing, a quote or bracket never closed, and a value that
starts with a character YAML reserves. Anything else keeps the parser's own words.
"""

from __future__ import annotations

import yaml

from analyzer.errors import PolicyProblem

_RESERVED_STARTS = {"@": "@", "`": "`", "%": "%"}


def syntax_problem(text: str, exc: yaml.MarkedYAMLError) -> PolicyProblem:
    """The problem for a syntax error, at the line to fix (not always the parser's)."""
    lines = text.splitlines()
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return PolicyProblem((), f"YAML syntax: {exc.problem or exc}")
    line, column = mark.line + 1, mark.column + 1
    line, cause = _cause(lines, line, exc)
    quoted = lines[line - 1].rstrip() if 0 < line <= len(lines) else ""
    shown = f"; the line: `{quoted}`" if quoted.strip() else ""
    where = f"line {line}, column {column}" if line == mark.line + 1 else f"line {line}"
    return PolicyProblem((), f"YAML syntax at {where}: {cause}{shown}", line)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _previous(lines: list[str], line: int) -> int | None:
    """The number of the last non-blank, non-comment line before ``line``."""
    for number in range(line - 1, 0, -1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def _cause(lines: list[str], line: int, exc: yaml.MarkedYAMLError) -> tuple[int, str]:
    problem = str(exc.problem or "")
    context = str(exc.context or "")
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    context_line = exc.context_mark.line + 1 if exc.context_mark is not None else line
    if "\t" in here[: len(here) - len(here.lstrip())] or "'\\t'" in problem:
        return line, "a tab in the indentation: YAML indents with spaces only"
    for character, shown in _RESERVED_STARTS.items():
        if f"character '{character}' that cannot start any token" in problem:
            return line, (
                f"a value cannot start with {shown} unquoted: put it in quotes "
                f'(`owner: "{shown}sre"`)'
            )
    if "mapping values are not allowed" in problem:
        return _stray_colon(lines, line)
    if "expected <block end>" in problem:
        item = lines[context_line - 1] if 0 < context_line <= len(lines) else ""
        is_item = item.lstrip().startswith("- ") and not here.lstrip().startswith("- ")
        if is_item and _indent(here) == _indent(item):  # a field of the item, at its dash
            first = item.lstrip()[2:].split(":", 1)[0]
            return line, (
                f"this field is in the column of the `- ` on line {context_line}; a field of "
                f"that item lines up with `{first}:`, {_indent(item) + 2} spaces in"
            )
        return line, (
            f"the indentation ({_indent(here)} spaces) lines up with nothing above it (compare "
            f"line {context_line}): the fields of one mapping, and the `- ` items of one list, "
            "start in the same column"
        )
    if "while scanning a quoted scalar" in context:
        return context_line, "a quote opened on this line is never closed"
    if "flow sequence" in context or "flow mapping" in context:
        return context_line, (
            "a [ or { opened on this line is not closed where expected: close it, put commas "
            "between items, or quote a value that contains , [ ] { }"
        )
    if problem.startswith("found undefined alias"):
        name = problem.removeprefix("found undefined alias").strip(" '")
        return line, f"the alias *{name} is used before any &{name} anchor defines it"
    if "could not find expected ':'" in problem:
        return context_line, "a key without its colon: write `key: value`"
    return line, problem or str(exc)


def _stray_colon(lines: list[str], line: int) -> tuple[int, str]:
    """``mapping values are not allowed here``: a colon YAML did not expect at ``line``."""
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    before = _previous(lines, line)
    if before is not None:
        above = lines[before - 1]
        item = above.strip().removeprefix("- ")
        if ":" not in item and _indent(above) <= _indent(here):
            return before, f"a key without its colon: write `{_with_colon(item)}`"
        if _indent(here) > _indent(above) and not above.rstrip().endswith(":"):
            return line, (
                f"this line is indented more than line {before}, which has a value already: "
                "line it up with the fields beside it"
            )
    return line, (
        "a second colon in one line: a value that contains ': ' must be quoted "
        f"(`{_quoted_value(here.strip())}`)"
    )


def _with_colon(item: str) -> str:
    key, _, value = item.partition(" ")
    return f"{key}: {value}" if value else f"{key}:"


def _quoted_value(line: str) -> str:
    key, _, value = line.partition(": ")
    escaped = value.replace('"', '\\"')
    return f'{key}: "{escaped}"' if value else line
