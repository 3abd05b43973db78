"""The report's HTTP hooks section: every hook answer of the rollout, from its audit trail.

Gates and informational hooks answer in ``hook`` events (each hook's outcome, HTTP status,
tries and reason); analysis hooks answer inside each look, as rows of kind ``hook`` in its
verdict. Both are read here as they were recorded; nothing is called again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analyzer.hook_verdicts import HOOK_KIND
from canarist.report.evidence import badge
from canarist.report.formatting import esc, utc
from canarist.report.history import Look
from workers.actions import EventKind
from workers.store import AuditEvent


def hook_rows(events: Sequence[AuditEvent], looks: Sequence[Look]) -> list[tuple[float, str, Any]]:
    """(when, point, answer) for every recorded hook answer, in time order."""
    rows: list[tuple[float, str, Any]] = []
    for event in events:
        answers = event.data.get("hooks") if event.kind == EventKind.HOOK else None
        for answer in answers if isinstance(answers, list) else ():
            if isinstance(answer, Mapping):
                rows.append((event.at, str(event.data.get("point", "")), answer))
    for look in looks:
        for metric in look.verdict.metrics:
            if metric.kind == HOOK_KIND:
                details = metric.judgement.details
                answer = {"name": metric.name, "outcome": metric.outcome.value,
                          "reason": metric.judgement.reason, **details}  # fmt: skip
                rows.append((look.at, "analysis", answer))
    return sorted(rows, key=lambda row: row[0])


def hooks_section(events: Sequence[AuditEvent], looks: Sequence[Look]) -> str:
    """The section, or nothing for a rollout whose policy calls no hook."""
    rows = hook_rows(events, looks)
    if not rows:
        return ""
    cells = "".join(
        f'<tr><td class="when">{esc(utc(at))}</td><td>{esc(point)}</td>'
        f"<td>{esc(answer.get('name', ''))}</td><td>{badge(str(answer.get('outcome', '')))}</td>"
        f"<td>{esc(answer.get('status') or '')}</td><td>{esc(answer.get('attempts', ''))}</td>"
        f'<td class="message">{esc(answer.get("reason", ""))}</td></tr>'
        for at, point, answer in rows
    )
    return (
        '<section id="hooks"><h2>HTTP hooks</h2><table class="timeline"><thead><tr><th>Time</th>'
        "<th>Point</th><th>Hook</th><th>Answer</th><th>HTTP</th><th>Tries</th><th>Reason</th>"
        f"</tr></thead><tbody>{cells}</tbody></table></section>"
    )
