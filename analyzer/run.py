"""Limits across looks: what Argo Rollouts calls an AnalysisRun, as a pure fold over verdicts.

One look yields a Verdict; a run of looks decides with the policy's limits: more FAIL looks than
``failure_limit`` abort, and more failed queries in a row than ``consecutive_error_limit`` make
the run INCONCLUSIVE — an outage of Prometheus is never a reason to promote, nor to abort.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from analyzer.policy.models import Analysis
from analyzer.verdict import Outcome, Reason, Verdict


@dataclass(frozen=True)
class RunTally:
    looks: int = 0
    failures: int = 0
    consecutive_errors: int = 0

    def observe(self, verdict: Verdict) -> RunTally:
        failed_query = any(
            metric.judgement.reason_code is Reason.QUERY_ERROR and not metric.dry_run
            for metric in verdict.metrics
        )
        return replace(
            self,
            looks=self.looks + 1,
            failures=self.failures + (verdict.outcome is Outcome.FAIL),
            consecutive_errors=self.consecutive_errors + 1 if failed_query else 0,
        )

    def outcome(self, analysis: Analysis) -> Outcome | None:
        """FAIL or INCONCLUSIVE once a limit is passed; None while the run may go on."""
        if self.failures > analysis.failure_limit:
            return Outcome.FAIL
        if self.consecutive_errors > analysis.consecutive_error_limit:
            return Outcome.INCONCLUSIVE
        return None
