"""The one error tree of Canarist's workers, beside the analyzer's (analyzer/errors.py).

Library errors (redis, the kubernetes client, httpx) are translated at the edge with
``raise ... from exc``, so a task only ever catches these. ``TemporaryError`` says "try again
later" and carries how long to wait; everything else is permanent for the operation that raised
it::

    CanaristError                  analyzer.errors
    └── WorkerError                anything the workers raise on purpose
        ├── TemporaryError         retry after ``retry_after`` seconds
        ├── SettingsError          a setting is refused, named with its variable or file
        │                          (also a ValueError)
        └── StoreError             the state store refused or failed an operation
            ├── NotFound           no rollout (or outbox item) with that id
            ├── Conflict           compare-and-set lost: the revision (or the app's
            │                      latest rollout) moved on; a stale task stops here
            ├── LeaseLost          another worker holds the rollout's lease, or ours expired
            ├── CorruptRecord      a stored record does not parse: retrying will not help
            │   └── UnsupportedFormat   it is in a format this release does not read
            └── StoreUnavailable   Redis unreachable, timed out or loading its AOF
                                   (also a TemporaryError)

A ``StoreUnavailable`` from a write leaves its outcome unknown: the reply may be what was lost.
Reload before deciding; the store recognises a replayed ``save`` of the same state.

The store's errors are named for what happened (``Conflict``, ``NotFound``), without the
``Error`` suffix ruff's N818 asks for: these are outcomes a task branches on.
"""

from __future__ import annotations

from collections.abc import Collection

from analyzer.errors import CanaristError

DEFAULT_RETRY_AFTER = 5.0
"""Seconds to wait before trying a temporarily failed operation again, unless told otherwise."""


class WorkerError(CanaristError):
    """Base of every error the workers raise on purpose."""


class TemporaryError(WorkerError):
    """The operation may succeed later: retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SettingsError(WorkerError, ValueError):
    """The settings do not load: the message names the variable or file, and the entry."""


class StoreError(WorkerError):
    """The state store refused or failed an operation."""


class NotFound(StoreError):  # noqa: N818 - see the module docstring
    """No rollout (or outbox item) has that id."""


class Conflict(StoreError):  # noqa: N818 - see the module docstring
    """A compare-and-set lost: the stored revision, or the app's latest rollout, moved on.

    Nothing was written. For a task this means "stale: do nothing"; for intake, "read the
    app's latest rollout again and retry".
    """


class LeaseLost(StoreError):  # noqa: N818 - see the module docstring
    """The rollout's lease is held by another worker, or ours expired: nothing was written."""


class CorruptRecord(StoreError):  # noqa: N818 - see the module docstring
    """A stored record does not parse; the message names the key and the bad field."""


class UnsupportedFormat(CorruptRecord):
    """A stored record in a format this release does not read: written by a newer Canarist (an
    upgrade under way, or undone), or by one older than this release carries on from.

    The message names the record's kind and id, the format found and the formats read; the
    record is left as it is, for a release that reads it.
    """

    def __init__(self, kind: str, record_id: str, found: int, reads: Collection[int]) -> None:
        readable = sorted(reads)
        if found > max(readable):
            why = "a newer release wrote it, and a release that reads it carries it on"
        else:
            why = "an older release wrote it, and this one no longer reads that format"
        formats = "format" if len(readable) == 1 else "formats"
        super().__init__(
            f"{kind} {record_id} is stored in format {found}, which this release of Canarist "
            f"does not read (it reads {formats} {', '.join(map(str, readable))}): {why}; the "
            "record is left as it is"
        )
        self.kind, self.record_id, self.found, self.reads = kind, record_id, found, tuple(readable)


class StoreUnavailable(StoreError, TemporaryError):  # noqa: N818 - see the module docstring
    """Redis is unreachable, timed out, or is still loading its AOF: try again later."""
