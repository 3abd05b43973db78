"""The error tree of Canarist's analyzer, and the root and the retry distinction every layer shares.

Errors are data where they can be (a failed query becomes an ERROR measurement, see the judges),
and exceptions only where the caller must stop. Library errors are translated at the edge with
``raise ... from exc`` so callers only ever catch these. Whether retrying can help is said once,
by class: an error that may succeed later is also a ``TemporaryError`` (kopf's), one that will
fail the same way until a person changes something is also a ``PermanentError``; the workers'
errors (workers/errors.py) reuse both. An error that is neither (a lost compare-and-set, say) is
an outcome its caller branches on. Below, "temporary:" and "permanent:" say which base a class
also has::

    CanaristError
    ├── TemporaryError            retrying may help, after ``retry_after`` seconds (None: the
    │                             caller's own backoff decides)
    ├── PermanentError            retrying will not help until a person changes something
    ├── PolicyError               permanent: a policy file or object is invalid; carries every
    │                             PolicyProblem found
    ├── TemplateError             permanent: a PromQL template or a value for it is unsafe or
    │                             undefined
    ├── SelectorError             permanent: label matchers given by a job or a person do not parse
    ├── JudgeError                permanent: a judge was given data it cannot judge (misaligned
    │                             intervals, a malformed histogram); also a ValueError
    ├── UnknownNameError          permanent: a registry has nothing by that name
    │   │                         (analyzer/registry.py); also a LookupError. Each seam's own is
    │   │                         drawn in its tree too (UnknownPlatformError, ...)
    │   └── UnknownJudgeError     permanent: no judge of that type
    │                             (analyzer/judges/registry.py, beside its registry)
    └── SourceError               a metric source failed
        ├── QueryError            permanent: the query itself is wrong (Prometheus said 4xx)
        └── TemporarySourceError  temporary: timeout, 5xx, connection refused; counts as an
                                  ERROR measurement
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_RETRY_AFTER = 5.0
"""Seconds to wait before trying a temporarily failed operation again, unless told otherwise."""


class CanaristError(Exception):
    """Base of every error Canarist raises on purpose."""


class TemporaryError(CanaristError):
    """The operation may succeed later: retry after ``retry_after`` seconds.

    ``retry_after`` is None when nobody said how long (a receiver without ``Retry-After``): the
    caller's own backoff decides (``wait_seconds``)."""

    def __init__(self, message: str, retry_after: float | None = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def wait_seconds(self, default: float = DEFAULT_RETRY_AFTER) -> float:
        """Seconds to wait before retrying: ``retry_after``, or ``default`` if it says nothing."""
        return default if self.retry_after is None else self.retry_after


class PermanentError(CanaristError):
    """The operation will fail the same way until a person changes something: do not retry."""


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy (or another YAML file a person wrote: the CLI's suite),
    located as precisely as we can. The API's answer for a bad field is canarist/api/models.py's
    ``Problem``.

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


class PolicyError(PermanentError):
    """A policy is invalid. ``problems`` lists every problem found, not just the first."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problem.render(source) for problem in problems))


class TemplateError(PermanentError):
    """A PromQL template is malformed, names an undefined variable, or a value would break it."""


class SelectorError(PermanentError):
    """Label matchers such as ``app="checkout",version="v2"`` could not be parsed."""


class UnknownNameError(PermanentError, LookupError):
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


class JudgeError(PermanentError, ValueError):
    """A judge was given data it cannot judge: the two versions' intervals differ, or a
    histogram's counts do not match its buckets."""


class SourceError(CanaristError):
    """A metric source could not answer."""


class QueryError(SourceError, PermanentError):
    """The source rejected the query as malformed: retrying will not help."""


class TemporarySourceError(SourceError, TemporaryError):
    """The source is unreachable, slow or failing: retry later; counts as an ERROR measurement."""
