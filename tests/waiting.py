"""Waiting in tests: for a condition that proves what the test needs, never for a fixed time.

A test that must know something happened in another thread or process polls for a sign of it
(the server started, the watcher asked twice, a later task was done) with ``wait_until``; when
the sign does not come, the failure says what was awaited. To show that something did *not*
happen (no second alert), wait for a later thing that could only come after it (a marker), then
assert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    what: str,
    check: Callable[[], T],
    timeout: float = 10.0,
    *,
    every: float = 0.02,
    detail: Callable[[], str] | None = None,
) -> T:
    """``check()``'s first truthy answer, polled every ``every`` s; after ``timeout`` s the test
    fails with "timed out ... waiting for <what>" and ``detail()`` (logs, the state seen)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g} s waiting for {what}"
            pytest.fail(f"{message}\n{detail()}" if detail is not None else message)
        time.sleep(every)
