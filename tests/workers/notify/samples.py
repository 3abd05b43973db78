"""Verdicts and notices as the engine produces them, built by hand from analyzer models."""

from __future__ import annotations

import time
import uuid

from analyzer.verdict import Judgement, MetricVerdict, Outcome, Reason, Verdict
from workers.actions import Notify, NotifyKind
from workers.notify.base import Notice

BASE_URL = "https://canarist.example.com/"


def failing_verdict() -> Verdict:
    """A FAIL verdict: a critical error-ratio regression (sequential), a slower p99 (Mann-Whitney)
    still undecided, a passing metric, and a dry-run metric that failed but does not count."""
    error_ratio = Judgement(
        outcome=Outcome.FAIL,
        reason="canary error-ratio ratio 2.1% vs baseline 0.4% (e-value 1,200 ≥ 20)",
        direction="high",
        baseline={"requests": 48_000.0, "errors": 192.0, "intervals": 10.0},
        canary={"requests": 12_000.0, "errors": 252.0, "intervals": 10.0},
        effect=4.25,
        effect_interval=(2.1, 7.0),
        e_value=1200.0,
        threshold=20.0,
        details={"regression_detected": True},
    )
    latency = Judgement(
        outcome=Outcome.INCONCLUSIVE,
        reason="latency-p99: interval includes 0, 8 of 10 samples",
        reason_code=Reason.TOO_FEW_SAMPLES,
        baseline={"count": 8.0, "median": 0.21},
        canary={"count": 8.0, "median": 0.24},
        effect=0.14,
        effect_interval=(-0.05, 0.31),
        p_value=0.09,
        threshold=0.02,
    )
    cpu = Judgement(outcome=Outcome.PASS, reason="cpu: within tolerance")
    dry = Judgement(
        outcome=Outcome.FAIL, reason="saturation: canary above 0.9", e_value=float("inf")
    )
    return Verdict(
        outcome=Outcome.FAIL,
        reason="critical metric error-ratio failed",
        score=40.0,
        decided_by=["error-ratio", "latency-p99"],
        metrics=[
            MetricVerdict(name="cpu", kind="gauge", judge="threshold", weight=1, judgement=cpu),
            MetricVerdict(
                name="latency-p99",
                kind="histogram",
                judge="mann_whitney",
                weight=1,
                judgement=latency,
            ),
            MetricVerdict(
                name="saturation", kind="gauge", judge="threshold", dry_run=True, judgement=dry
            ),
            MetricVerdict(
                name="error-ratio",
                kind="counts",
                judge="sequential",
                critical=True,
                weight=2,
                judgement=error_ratio,
            ),
        ],
        window_start=1_000_000.0,
        window_end=1_000_600.0,
    )


def notify_action(
    kind: NotifyKind = "aborted", rollout_id: str = "r-1", app: str = "checkout"
) -> Notify:
    verdict = failing_verdict()
    return Notify(
        kind=kind,
        rollout_id=rollout_id,
        app=app,
        namespace="shop",
        version="v2",
        reason=f"analysis failed (1 FAIL look(s), failure_limit 0): {verdict.reason}",
        routes=("oncall",),
        evidence=verdict.model_dump(mode="json"),  # what the engine puts in a Notify
        dedupe_key=f"{rollout_id}/1/{kind}",
    )


def notice(
    kind: NotifyKind = "aborted",
    rollout_id: str = "r-1",
    app: str = "checkout",
    occurred_at: float = 1_700_000_000.0,
) -> Notice:
    return Notice.from_action(
        notify_action(kind, rollout_id, app),
        policy="web-default",
        occurred_at=occurred_at,
        base_url=BASE_URL,
    )


def fresh_notice(kind: NotifyKind = "aborted") -> Notice:
    """A notice of a rollout no other test uses, happening now (Alertmanager keeps it active)."""
    unique = uuid.uuid4().hex[:12]
    return notice(kind, rollout_id=f"r-{unique}", app=f"app-{unique}", occurred_at=time.time())
