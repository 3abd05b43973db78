"""Analysis hooks as rows of a look's verdict, beside the metrics.

An ``analysis`` hook (analyzer/policy/hooks.py) answers at every look: PASS, FAIL or
INCONCLUSIVE. Its answer is a ``MetricVerdict`` of kind ``hook`` in the verdict's evidence, so
the report, the alerts and the audit trail show it as they show a metric, and it is held to the
same limits: a critical hook (the default) that FAILs fails the look, whatever the score, and
the run's ``failure_limit`` then decides as for any FAIL look; one that is INCONCLUSIVE holds a
PASS back (as a critical metric that is undecided does). A hook with ``critical: false`` is
shown and not counted (as a dry run). Hooks carry no weight: the score stays the metrics'.

A hook can only make a look worse, never better: a look without metric data stays
INCONCLUSIVE whatever the hooks say (missing data never promotes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analyzer.verdict import Judgement, MetricVerdict, Outcome, Verdict

HOOK_KIND = "hook"
HOOK_JUDGE = "webhook"


def hook_row(
    name: str, outcome: Outcome, reason: str, critical: bool, details: Mapping[str, Any]
) -> MetricVerdict:
    """One analysis hook's answer as a verdict row."""
    judgement = Judgement(outcome=outcome, reason=f"{name} hook: {reason}", details=dict(details))
    return MetricVerdict(
        name=name,
        kind=HOOK_KIND,
        judge=HOOK_JUDGE,
        critical=critical,
        dry_run=not critical,
        judgement=judgement,
    )


def with_hooks(verdict: Verdict, rows: Sequence[MetricVerdict]) -> Verdict:
    """``verdict`` with the hooks' rows added, and its outcome made worse where they say so."""
    if not rows:
        return verdict
    metrics = [*verdict.metrics, *rows]
    counted = [row for row in rows if not row.dry_run]
    failed = [row for row in counted if row.outcome is Outcome.FAIL]
    undecided = [row for row in counted if row.outcome is Outcome.INCONCLUSIVE]
    update: dict[str, Any] = {"metrics": metrics}
    if failed:
        reasons = "; ".join(row.judgement.reason for row in failed)
        update |= {
            "outcome": Outcome.FAIL,
            "reason": f"{reasons} — FAIL, critical",
            "decided_by": [row.name for row in failed],
        }
    elif undecided and verdict.outcome is Outcome.PASS:
        reasons = "; ".join(row.judgement.reason for row in undecided)
        update |= {
            "outcome": Outcome.INCONCLUSIVE,
            "reason": f"{reasons} (critical hook undecided)",
            "decided_by": [row.name for row in undecided],
        }
    return verdict.model_copy(update=update)
