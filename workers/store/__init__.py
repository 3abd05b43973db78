"""Where rollouts persist: the StateStore seam (base.py), over Redis or in memory.

``store_from_url`` is the registry: ``redis://``, ``rediss://`` and ``unix://`` URLs get the
Redis store, ``memory://`` an in-memory one; any other scheme is an error, never a fallback.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from workers.store.base import (
    IDEMPOTENCY_TTL_SECONDS,
    AuditEvent,
    Created,
    IdempotencyKey,
    Leases,
    Outbox,
    OutboxItem,
    PolicyTexts,
    SessionRecords,
    StateStore,
    Stored,
)
from workers.store.memory import MemoryStateStore
from workers.store.records import FORMATS, RecordKind
from workers.store.redis import DEFAULT_PREFIX, RedisStateStore

__all__ = [
    "DEFAULT_PREFIX",
    "FORMATS",
    "IDEMPOTENCY_TTL_SECONDS",
    "AuditEvent",
    "Created",
    "IdempotencyKey",
    "Leases",
    "MemoryStateStore",
    "Outbox",
    "OutboxItem",
    "PolicyTexts",
    "RecordKind",
    "RedisStateStore",
    "SessionRecords",
    "StateStore",
    "Stored",
    "store_from_url",
]


def store_from_url(url: str, prefix: str = DEFAULT_PREFIX) -> StateStore:
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        return RedisStateStore.from_url(url, prefix)
    if scheme == "memory":
        return MemoryStateStore()
    raise ValueError(f"no state store for {url!r}: use redis://, rediss://, unix:// or memory://")
