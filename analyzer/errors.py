"""The one error tree of Canarist's analyzer.

Errors are data where they can be (a failed query becomes an ERROR measurement, see the judges),
and exceptions only where the caller must stop. Library errors are translated at the edge with
``raise ... from exc`` so callers only ever catch these::

    CanaristError
    ├── PolicyError            a policy file or object is invalid: carries every Problem found
    ├── TemplateError          a PromQL template or a value for it is unsafe or undefined
    ├── SelectorError          label matchers given by a job or a person do not parse
    ├── UnknownNameError       a registry has nothing by that name (also a LookupError); each
    │                          seam subclasses it in its own tree (UnknownJudgeError here,
    │                          UnknownPlatformError a PlatformError in the workers', ...)
    └── SourceError            a metric source failed
        ├── QueryError         the query itself is wrong (Prometheus said 4xx): a policy error
        └── TemporarySourceError  timeout, 5xx, connection refused: try again later
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CanaristError(Exception):
    """Base of every error Canarist raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy, located as precisely as we can.

    ``path`` is the field's path inside the document (``("metrics", 2, "tolerance")``); ``line`` is
    the 1-based line in the file when the policy came from YAML, else None.
    """

    path: tuple[str | int, ...]
    message: str
    line: int | None = None

    @property
    def dotted_path(self) -> str:
        """``metrics[2].tolerance`` — how a person reads a path."""
        text = ""
        for part in self.path:
            if isinstance(part, int):
                text += f"[{part}]"
            else:
                text += f".{part}" if text else part
        return text or "(document)"

    def render(self, source: str) -> str:
        """``FILE:LINE: path.to.field: message``, the format editors and CI logs understand."""
        location = f"{source}:{self.line}" if self.line is not None else source
        return f"{location}: {self.dotted_path}: {self.message}"


class PolicyError(CanaristError):
    """A policy is invalid. ``problems`` lists every problem found, not just the first."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problem.render(source) for problem in problems))


class TemplateError(CanaristError):
    """A PromQL template is malformed, names an undefined variable, or a value would break it."""


class SelectorError(CanaristError):
    """Label matchers such as ``app="checkout",version="v2"`` could not be parsed."""


class UnknownNameError(CanaristError, LookupError):
    """A name with nothing registered under it (analyzer/registry.py): never a fallback.

    The message names the kind of thing, the name asked for and every known one:
    ``unknown platform 'kubernetez'; known: kubernetes, local, observe``; with ``where``, the
    place the name was written: ``alert route 'oncall' has unknown type 'pagerduty'; known: ...``.
    """

    def __init__(self, kind: str, name: str, known: Sequence[str], where: str = "") -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        unknown = f"{where} has unknown {kind}" if where else f"unknown {kind}"
        super().__init__(f"{unknown} {name!r}; known: {', '.join(self.known)}")


class SourceError(CanaristError):
    """A metric source could not answer."""


class QueryError(SourceError):
    """The source rejected the query as malformed: retrying will not help."""


class TemporarySourceError(SourceError):
    """The source is unreachable, slow or failing: retry later; counts as an ERROR measurement."""
