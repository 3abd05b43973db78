"""Read a policy file into a YAML node graph within limits, or say what is wrong and where.

A policy is a few KiB of UTF-8 YAML written by a person; what arrives may be anything. Every
limit below is checked while the file is read, before anything is built from it, so a hostile or
broken file costs at most a bounded read and a bounded parse:

- ``MAX_POLICY_BYTES``: at most that many bytes are read; a longer file is refused at the line
  where it crosses the limit.
- Undecodable bytes are refused with their byte offset and line: policies are UTF-8.
- ``MAX_DEPTH``: PyYAML's composer recurses once per level; deeper nesting is refused before it
  can exhaust Python's stack.
- ``MAX_NODES``: anchors and aliases are allowed (sharing a judge between metrics is a fair
  use), but the document's size *with every alias expanded* is counted as it is composed. The
  loader builds plain data by expanding aliases, so an alias bomb (each level repeating the one
  before nine times) would otherwise cost exponential time and memory; it is refused at the
  node that crosses the limit, after composing at most ``MAX_NODES`` nodes' worth of work. An
  alias used inside the value it names (a recursive structure) is refused too.

``MAX_METRICS`` and ``MAX_STEPS`` bound the lists the analysis and the engine iterate; the
loader checks them on the built data, before validation. Problems are returned as data; the
loader raises them as one PolicyError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import yaml

from analyzer.errors import PolicyProblem
from analyzer.policy.syntax import syntax_problem

MAX_POLICY_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_NODES = 10_000
MAX_METRICS = 50
MAX_STEPS = 100

PathKey = tuple[str | int, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"


def read_policy_file(path: Path) -> tuple[str, list[PolicyProblem]]:
    """The file's text, or the problems that stop it being read (unreadable, too big, not UTF-8)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        return "", [PolicyProblem((), f"cannot read file: {exc.strerror or exc}")]
    if len(data) > MAX_POLICY_BYTES:
        return "", [_too_large(data[:MAX_POLICY_BYTES].count(b"\n") + 1)]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        return "", [_undecodable(data, exc.start)]


def compose(text: str) -> tuple[yaml.Node | None, list[PolicyProblem]]:
    """The document's node graph (None for an empty document), or why it cannot be had."""
    encoded = text.encode("utf-8", errors="surrogatepass")
    if len(encoded) > MAX_POLICY_BYTES:
        return None, [_too_large(encoded[:MAX_POLICY_BYTES].count(b"\n") + 1)]
    try:
        loader = _GuardedLoader(text)
    except yaml.reader.ReaderError as exc:
        return None, [_unacceptable(text, exc)]
    try:
        return loader.get_single_node(), []
    except _LimitExceeded as exc:
        return None, [exc.problem]
    except yaml.MarkedYAMLError as exc:
        return None, [syntax_problem(text, exc)]
    except yaml.reader.ReaderError as exc:
        return None, [_unacceptable(text, exc)]
    finally:
        loader.dispose()


def _too_large(line: int) -> PolicyProblem:
    limit = MAX_POLICY_BYTES // 1024
    return PolicyProblem(
        (), f"the file is larger than {limit} KiB (it crosses the limit on this line)", line
    )


def _undecodable(data: bytes, offset: int) -> PolicyProblem:
    line = data[:offset].count(b"\n") + 1
    hint = (
        " (this file is UTF-16: save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    )
    return PolicyProblem(
        (),
        f"byte 0x{data[offset]:02x} at offset {offset} is not UTF-8; policies are UTF-8 text{hint}",
        line,
    )


def _unacceptable(text: str, exc: yaml.reader.ReaderError) -> PolicyProblem:
    line = text[: exc.position].count("\n") + 1
    character = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return PolicyProblem(
        (), f"character U+{character:04X} is not allowed in YAML: {exc.reason}", line
    )


class _LimitExceeded(yaml.YAMLError):
    """Stops composition at once; never leaves this module (compose() returns the problem)."""

    def __init__(self, problem: PolicyProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader's composer, counting depth and expanded nodes as it goes."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._path: list[str | int] = []
        self._depth = 0  # keys count too: a key can be a collection
        self._expanded = 0  # nodes so far, every alias counted as the nodes it repeats
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, once composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        part = _path_part(index)
        if part is not None:
            self._path.append(part)
        self._depth += 1
        try:
            return self._compose_counted(parent, index)
        finally:
            self._depth -= 1
            if part is not None:
                self._path.pop()

    def _compose_counted(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) and event.anchor in self.anchors:
            target = self.anchors[event.anchor]
            size = self._sizes.get(id(target))
            if size is None:  # its anchor is still being composed: the alias is inside it
                self._refuse(f"alias *{event.anchor} is used inside the value it names", line)
            self._count(size, line)
            return super().compose_node(parent, index)
        if self._depth > MAX_DEPTH:
            self._refuse(f"nested deeper than {MAX_DEPTH} levels", line)
        before = self._expanded
        self._count(1, line)
        node = super().compose_node(parent, index)
        self._sizes[id(node)] = self._expanded - before
        return node

    def _count(self, nodes: int, line: int) -> None:
        self._expanded += nodes
        if self._expanded > MAX_NODES:
            self._refuse(
                f"the document has more than {MAX_NODES} YAML nodes here, counting each alias "
                "as the nodes it repeats; a policy needs a few hundred",
                line,
            )

    def _refuse(self, message: str, line: int) -> NoReturn:
        raise _LimitExceeded(PolicyProblem(tuple(self._path), message, line))


def _path_part(index: Any) -> str | int | None:
    """The path step of a node PyYAML composes: a list index, or its mapping key's text."""
    if isinstance(index, int):
        return index
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)
    return None


def build_data(root: yaml.Node) -> tuple[Any, dict[PathKey, int], list[PolicyProblem]]:
    """Plain data from a composed document, the line of each field written in it, and what
    could not be read (a merge key, a duplicate key, a bad tag or date), each at its line."""
    lines: dict[PathKey, int] = {}
    problems: list[PolicyProblem] = []
    data = _build(root, (), lines, problems)
    return data, lines, problems


def line_of(path: PathKey, lines: dict[PathKey, int]) -> int | None:
    """The line of ``path``, or of its nearest ancestor written in the file (for missing fields)."""
    for length in range(len(path), -1, -1):
        if path[:length] in lines:
            return lines[path[:length]]
    return None


def _build(
    node: yaml.Node, path: PathKey, lines: dict[PathKey, int], problems: list[PolicyProblem]
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                problems.append(PolicyProblem(path, _bad_key(key_node), key_line))
                continue
            key = _scalar(key_node, path, problems)
            key_path = (*path, key)
            if key in result:
                problems.append(PolicyProblem(key_path, f"duplicate key {key!r}", key_line))
                continue
            lines[key_path] = key_line
            result[key] = _build(value_node, key_path, lines, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), lines, problems) for index, item in enumerate(node.value)
        ]
    return _scalar(node, path, problems)


def _bad_key(key_node: yaml.Node) -> str:
    if key_node.tag == MERGE_TAG:
        return (
            "YAML merge keys (<<) are not supported: write the fields out, or alias a whole value"
        )
    if isinstance(key_node, yaml.MappingNode) and key_node.flow_style:
        return (
            "a value that starts with { is read as a YAML mapping: put a template that starts "
            'with {{ in quotes (`query: "{{ ... }}"`)'
        )
    return "a key is a plain word, not a list or a mapping"


def _scalar(node: yaml.Node, path: PathKey, problems: list[PolicyProblem]) -> Any:
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # a bad tag, date or base64
        reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
        problems.append(
            PolicyProblem(path, f"cannot read this value: {reason}", node.start_mark.line + 1)
        )
        return None
