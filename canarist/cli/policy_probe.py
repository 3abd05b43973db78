"""``canarist policy validate --prometheus URL``: run each query once, and say what came back.

A policy can be valid and still measure nothing: a metric renamed, a label the app does not
have, a version label that is not ``version``. Validation cannot know; Prometheus can. Each query
of a valid policy is rendered for each version named (``--baseline``, ``--canary``) with
``{{ interval }}`` as one hour and evaluated once, now, through analyzer/sources/prometheus.py:
so ``increase(x[{{ interval }}])`` covers the last hour. Each field gets one line at its place in
the file: the series count per version, or a warning ``no series for canary (…)``. A warning
does not fail validation (the app may not run yet); a query Prometheus refuses does, and an
unreachable Prometheus is said once and ends the probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analyzer.errors import PolicyProblem, QueryError, TemplateError, TemporarySourceError
from analyzer.policy.models import Policy
from analyzer.policy.promql import BUILTIN_VARIABLES, PromQLTemplate, Selector
from analyzer.policy.reading import PathKey, build_data, compose, line_of, read_policy_file
from analyzer.sources.base import MetricSource

WINDOW = timedelta(hours=1)
_STEP = timedelta(minutes=1)


@dataclass
class ProbeReport:
    """What the probe of one policy file found: lines to print, and how it ended."""

    lines: list[str] = field(default_factory=list)
    refused: int = 0  # queries Prometheus refused: the policy is wrong after all
    unreachable: str | None = None  # why Prometheus could not be asked, once


def probe_policy(
    path: Path,
    policy: Policy,
    source: MetricSource,
    versions: Mapping[str, Selector],
    args: Mapping[str, str],
    now: datetime | None = None,
) -> ProbeReport:
    """Run every query of ``policy`` once per version; report per field at its line."""
    report = ProbeReport()
    lines = _field_lines(path)
    values = {arg.name: arg.default for arg in policy.args if arg.default is not None}
    values.update(args)
    at = (now or datetime.now(UTC)).replace(microsecond=0)
    for index, metric in enumerate(policy.metrics):
        for name, text in metric.templates().items():
            where: PathKey = ("metrics", index, name)
            message = _probe_field(text, source, versions, values, at, report)
            if report.unreachable is not None:
                return report
            problem = PolicyProblem(where, message, line_of(where, lines))
            report.lines.append(problem.render(str(path)))
    return report


def _probe_field(
    text: str,
    source: MetricSource,
    versions: Mapping[str, Selector],
    values: Mapping[str, str],
    at: datetime,
    report: ProbeReport,
) -> str:
    template = PromQLTemplate.parse(text)
    missing = sorted(template.variables - BUILTIN_VARIABLES - set(values))
    if missing:
        given = " ".join(f"--arg {name}=..." for name in missing)
        return f"warning: not run: {', '.join(missing)} has no default; give {given}"
    counts = []
    for version, selector in versions.items():
        try:
            promql = template.render(selector=selector, interval=WINDOW, args=values)
            series = source.query_range(promql, at, at, _STEP)
        except TemplateError as exc:
            return f"warning: not run: {exc}"
        except QueryError as exc:
            report.refused += 1
            return f"Prometheus refuses the query for {version}: {exc}"
        except TemporarySourceError as exc:
            report.unreachable = str(exc)
            return ""
        counts.append((version, selector, len(series)))
    said = [
        f"{count} series for {version}"
        if count
        else f"no series for {version} ({selector.render()}) in the last hour"
        for version, selector, count in counts
    ]
    empty = any(count == 0 for _, _, count in counts)
    return ("warning: " if empty else "") + ", ".join(said)


def _field_lines(path: Path) -> dict[PathKey, int]:
    """The line of each field of the file (it loaded, so it reads and composes)."""
    text, problems = read_policy_file(path)
    root, problems = compose(text) if not problems else (None, problems)
    if root is None:
        return {}
    return build_data(root)[1]
