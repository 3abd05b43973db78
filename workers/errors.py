"""The error tree of Canarist's workers, beneath the analyzer's root (analyzer/errors.py).

Library errors (redis, kubernetes, httpx) are translated at the edge with ``raise ... from exc``,
so a task only ever catches these. Whether retrying can help is said by class, with the
analyzer's two bases: "temporary:" below marks a class that is also a ``TemporaryError`` (retry
after ``retry_after`` seconds), "permanent:" one that is also a ``PermanentError`` (retrying will
not help until a person changes something); an error that is neither is an outcome its caller
branches on. ``TemporaryError`` itself (re-exported here) is what the workers raise when a
service they need is busy (a platform's lock, a compare-and-set that keeps losing); it is no
``WorkerError``, so a task that means "anything the workers raise" catches both::

    CanaristError                   analyzer.errors, beside TemporaryError and PermanentError
    └── WorkerError                 anything the workers raise on purpose
        ├── UnknownStrategyError    permanent: no planner for a policy's strategy type
        │                           (workers/strategies/base.py, beside its registry); also an
        │                           UnknownNameError (analyzer.errors), so a LookupError
        ├── SettingsError           permanent: a setting is refused, named with its variable or
        │                           file; also a ValueError
        ├── StoreError              the state store refused or failed an operation
        │   ├── NotFound            permanent: no rollout (or outbox item) with that id
        │   ├── Conflict            compare-and-set lost: the revision (or the app's latest
        │   │                       rollout) moved on; a stale task stops here
        │   ├── LeaseLost           another worker holds the rollout's lease, or ours expired
        │   ├── CorruptRecord       a stored record this release cannot read (a worker of
        │   │   │                   another release may: the outbox retries its items)
        │   │   └── UnsupportedFormat   it is in a format this release does not read
        │   └── StoreUnavailable    temporary: Redis unreachable, timed out or loading its AOF
        ├── IntakeError             a job or a command that intake refuses
        │   ├── UnknownPolicyError  permanent: no policy of that name in the policy directory;
        │   │                       also a LookupError
        │   └── InvalidJobError     permanent: args refused, alert route undefined, policy file
        │                           invalid, idempotency key used for another job, unknown
        │                           command; also a ValueError
        ├── NotifyError             a notice did not reach people
        │   ├── DeliveryError       a post failed: ``status``, the receiver's ``retry_after``
        │   │   ├── TemporaryDeliveryError  temporary: timeout, refused connection, 5xx, 408, 429
        │   │   └── PermanentDeliveryError  permanent: another 4xx, a bad URL, a route the
        │   │                               service does not configure
        │   └── UnknownRouteTypeError   permanent: no notifier for a route's type
        │                               (workers/notify/base.py, beside its registry); also an
        │                               UnknownNameError
        └── PlatformError           a platform refused an action for good
            │                       (workers/platforms/base.py, beside the seam)
            ├── UnknownPlatformError    permanent: no platform of that name; also an
            │                           UnknownNameError
            ├── UnknownRouterError      permanent: no Kubernetes router of that name
            │                           (workers/platforms/kubernetes/router.py); also an
            │                           UnknownNameError
            └── StaleRolloutError   an action of an older rollout than the app's owner:
                                    ignored (workers/platforms/local/model.py)

A ``StoreUnavailable`` from a write leaves its outcome unknown: the reply may be what was lost.
Reload before deciding; the store recognises a replayed ``save`` of the same state.

The store's errors are named for what happened (``Conflict``, ``NotFound``), without the
``Error`` suffix ruff's N818 asks for: these are outcomes a task branches on.
"""

from __future__ import annotations

from collections.abc import Collection

from analyzer.errors import DEFAULT_RETRY_AFTER, CanaristError, PermanentError, TemporaryError

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "CanaristError",
    "Conflict",
    "CorruptRecord",
    "DeliveryError",
    "IntakeError",
    "InvalidJobError",
    "LeaseLost",
    "NotFound",
    "NotifyError",
    "PermanentDeliveryError",
    "PermanentError",
    "SettingsError",
    "StoreError",
    "StoreUnavailable",
    "TemporaryDeliveryError",
    "TemporaryError",
    "UnknownPolicyError",
    "UnsupportedFormat",
    "WorkerError",
]


class WorkerError(CanaristError):
    """Base of every error the workers raise on purpose."""


class SettingsError(WorkerError, PermanentError, ValueError):
    """The settings do not load: the message names the variable or file, and the entry."""


class StoreError(WorkerError):
    """The state store refused or failed an operation."""


class NotFound(StoreError, PermanentError):  # noqa: N818 - see the module docstring
    """No rollout (or outbox item) has that id."""


class Conflict(StoreError):  # noqa: N818 - see the module docstring
    """A compare-and-set lost: the stored revision, or the app's latest rollout, moved on.

    Nothing was written. For a task this means "stale: do nothing"; for intake, "read the
    app's latest rollout again and retry".
    """


class LeaseLost(StoreError):  # noqa: N818 - see the module docstring
    """The rollout's lease is held by another worker, or ours expired: nothing was written."""


class CorruptRecord(StoreError):  # noqa: N818 - see the module docstring
    """A stored record does not parse; the message names the key and the bad field.

    Neither temporary nor permanent: this release will never read it, but a worker of another
    release may (the outbox retries its items; the API answers 500)."""


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


class IntakeError(WorkerError):
    """Base of what intake (workers/intake.py) refuses."""


class UnknownPolicyError(IntakeError, PermanentError, LookupError):
    """The job names a policy the policy directory does not hold."""


class InvalidJobError(IntakeError, PermanentError, ValueError):
    """The job cannot run as given; the message says why, naming the field or file."""


class NotifyError(WorkerError):
    """Base of the errors of the notify seam (workers/notify/)."""


class DeliveryError(NotifyError):
    """A notice could not be delivered to one route; raised as one of the two below.

    ``TemporaryDeliveryError`` when the same post may succeed later (timeout, connection refused,
    5xx, 408, 429), ``PermanentDeliveryError`` when it never will as configured (other 4xx, a bad
    URL): the outbox retries the first kind and parks the second for a person. ``retry_after``
    is the receiver's ``Retry-After`` in seconds when it sent one (else None); ``status`` the
    HTTP status when there was one.
    """

    retry_after: float | None

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status

    @property
    def temporary(self) -> bool:
        """Whether retrying can help (the metric of failed deliveries is labelled with it)."""
        return isinstance(self, TemporaryError)


class TemporaryDeliveryError(DeliveryError, TemporaryError):
    """The post may succeed later: a timeout, a refused connection, a 5xx, 408 or 429."""


class PermanentDeliveryError(DeliveryError, PermanentError):
    """The post will fail as configured: another 4xx, a bad URL, a route not configured."""
