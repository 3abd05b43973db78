"""What the demo releases, and the example policies at demo scale.

The demo runs the shipped example policies (policies/*.yaml), not policies written for it, so
what a newcomer sees is what those files do. Their durations are for production traffic (look
every minute, analyse ten minutes per step); ``scaled_policy`` divides every duration of the
policy by ``time_scale`` (interval, begin_after, each analyze and pause, blue-green delays), and
nothing else: metrics, tolerances, alpha and steps are the shipped ones.

Two releases of the demo service ``checkout`` follow the stable ``v1``:

- ``v2`` is healthy (the same code, a little faster) and goes out under ``default-canary``
  (5% -> 25% -> 50% -> 100%, errors, latency and memory judged): it is promoted.
- ``v3`` is bad (about ten times the errors and 30 ms slower) and goes out under
  ``targeted-canary``: only requests from Korea (``x-region: KR``) and opted-in testers see it
  first; the analysis of that audience aborts it, their traffic goes back to the stable version
  (now ``v2``), and Alertmanager receives the alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from analyzer.policy import load_policy
from analyzer.policy.durations import format_duration, parse_duration

APP, NAMESPACE, STABLE = "checkout", "demo", "v1"
# Keys whose values are durations, wherever they appear in a policy (rolling batches write
# ``analyze: 5m``, canary steps ``analyze: {duration: 10m}``: both are caught).
DURATION_KEYS = frozenset(
    {"interval", "begin_after", "duration", "analyze", "scale_down_delay", "auto_promote_after"}
)
# Prometheus scrapes the demo every second; increase() over an interval needs at least two
# samples in it, so an analysis interval is never shorter than three seconds.
MIN_SECONDS = {"interval": 3.0}


@dataclass(frozen=True)
class DemoRelease:
    """One release the demo submits, and what Canarist should decide about it."""

    version: str
    policy: str
    flags: tuple[str, ...]  # the demo service's behaviour flags for this version
    expected: str  # "promoted" or "aborted"
    story: str  # one line for the summary

    def command(self) -> str:
        """The local platform's command line for this version (``{port}`` is filled in)."""
        return service_command(self.version, self.flags)


STABLE_FLAGS = ("--latency", "0.02", "--error-rate", "0.005")
RELEASES = (
    DemoRelease(
        "v2",
        "default-canary",
        ("--latency", "0.019", "--error-rate", "0.005"),
        "promoted",
        "healthy: the same error rate, 1 ms faster",
    ),
    DemoRelease(
        "v3",
        "targeted-canary",
        ("--latency", "0.02", "--extra-latency", "0.03", "--error-rate", "0.06"),
        "aborted",
        "bad: 6% errors instead of 0.5%, and 30 ms slower",
    ),
)


def service_command(version: str, flags: tuple[str, ...]) -> str:
    """``python -m canarist.demo.service`` for ``version`` with its flags and a ``{port}``."""
    return " ".join(
        ["python", "-m", "canarist.demo.service", "--port", "{port}", "--version", version, *flags]
    )


def scale_durations(document: Any, time_scale: float) -> Any:
    """``document`` (a parsed policy) with every duration divided by ``time_scale``."""
    if isinstance(document, Mapping):
        return {
            key: _scaled(value, time_scale, MIN_SECONDS.get(key, 1.0))
            if key in DURATION_KEYS and not isinstance(value, Mapping)
            else scale_durations(value, time_scale)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [scale_durations(item, time_scale) for item in document]
    return document


def _scaled(value: Any, time_scale: float, least: float) -> Any:
    if value is None:
        return None
    seconds = parse_duration(value).total_seconds() / time_scale
    return format_duration(timedelta(seconds=max(least, math.ceil(seconds))))


def scaled_policy(source: Path, target_dir: Path, time_scale: float) -> Path:
    """Write ``source`` at demo scale into ``target_dir`` (same file name) and check it loads."""
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    header = f"# {source.name} at demo scale: every duration divided by {time_scale:g}\n"
    target.write_text(header + yaml.safe_dump(scale_durations(document, time_scale)), "utf-8")
    load_policy(target)  # a PolicyError here names the file, line and field
    return target
