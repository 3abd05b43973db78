"""Platforms: where a rollout's traffic and workloads change (the seam is ``base.Platform``).

``platform_for(name)`` is the registry a job's ``platform`` names: ``observe`` (analysis only,
touches nothing), ``kubernetes`` (Deployments, Services and a traffic router; kubernetes/) and
``local`` (processes behind NGINX on one machine; local/). An unknown name raises
``UnknownPlatformError``: a rollout never silently runs on another platform. The in-memory
platform (memory.py) is for tests and is not registered, as the in-memory notifier is not.

Each factory imports its platform when first called, so a process that never runs one (the API,
which only validates names) does not load the kubernetes client.

``heal_configured()`` repairs what a platform serves outside any rollout; only the local
platform runs such a thing (its NGINX router, which fronts every version whatever the phase of
any rollout), so it heals the directory ``CANARIST_LOCAL_DIR`` names, when set. The beat
reconciler calls it (workers/tasks.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from analyzer.registry import Registry
from workers.platforms.base import (
    Failed,
    NotYet,
    Platform,
    PlatformError,
    Readiness,
    Ready,
    UnknownPlatformError,
)
from workers.platforms.observe import ObservePlatform

__all__ = [
    "IMPLEMENTATIONS",
    "Failed",
    "NotYet",
    "Platform",
    "PlatformError",
    "Readiness",
    "Ready",
    "UnknownPlatformError",
    "heal_configured",
    "platform_for",
    "platform_names",
]


def _kubernetes() -> Platform:
    from workers.platforms.kubernetes import KubernetesPlatform  # noqa: PLC0415 - see above

    return KubernetesPlatform.from_env()


def _local() -> Platform:
    from workers.platforms.local import LocalPlatform  # noqa: PLC0415 - see above

    return LocalPlatform.from_env()


IMPLEMENTATIONS: Registry[str, Callable[[], Platform]] = Registry(
    "platform",
    {"observe": ObservePlatform, "kubernetes": _kubernetes, "local": _local},
    UnknownPlatformError,
)


def platform_names() -> tuple[str, ...]:
    """Every platform a job may name, sorted."""
    return IMPLEMENTATIONS.names


def platform_for(name: str) -> Platform:
    """A new platform of that name; UnknownPlatformError if none is registered."""
    return IMPLEMENTATIONS[name]()


def heal_configured() -> list[str]:
    """Repairs made to the local platform's router, when ``CANARIST_LOCAL_DIR`` is set."""
    if not os.environ.get("CANARIST_LOCAL_DIR"):
        return []
    from workers.platforms.local import LocalPlatform  # noqa: PLC0415 - see the docstring

    return LocalPlatform.from_env().heal()
