"""Fixtures for the notifier tests: an HTTP client and a capturing receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.workers.notify.capture import CaptureServer


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """Shared by the notifiers under test; ignores proxy variables, as loopback needs no proxy."""
    with httpx.Client(timeout=5.0, trust_env=False) as shared:
        yield shared


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server
