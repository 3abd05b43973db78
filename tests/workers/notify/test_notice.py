"""A Notice is built from the engine's Notify action and its Verdict evidence, and is JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import pytest

from tests.workers.notify.samples import failing_verdict, notice, notify_action
from workers.actions import action_from_record, action_record
from workers.notify.base import Notice, report_url
from workers.notify.notice import report_signature


def test_a_notice_carries_the_action_the_policy_and_the_report_link() -> None:
    built = notice("aborted", rollout_id="r-1")

    assert (built.kind, built.rollout_id, built.app, built.namespace) == (
        "aborted",
        "r-1",
        "checkout",
        "shop",
    )
    assert (built.policy, built.version, built.occurred_at) == (
        "web-default",
        "v2",
        1_700_000_000.0,
    )
    assert built.reason.endswith("critical metric error-ratio failed")
    assert built.dedupe_key == "r-1/1/aborted"
    assert built.report_url == "https://canarist.example.com/v1/rollouts/r-1/report"
    assert built.title == "Rollout aborted: checkout v2 in shop"


def test_the_metrics_behind_the_decision_come_first_fail_then_undecided() -> None:
    metrics = notice().metrics

    # FAIL before INCONCLUSIVE; the passing metric and the dry-run failure are left out.
    assert [(metric.name, metric.outcome) for metric in metrics] == [
        ("error-ratio", "fail"),
        ("latency-p99", "inconclusive"),
    ]
    error_ratio = metrics[0]
    assert error_ratio.critical
    assert error_ratio.reason.startswith("canary error-ratio ratio 2.1% vs baseline 0.4%")
    assert (error_ratio.effect, error_ratio.effect_interval) == (4.25, (2.1, 7.0))
    assert (error_ratio.e_value, error_ratio.threshold) == (1200.0, 20.0)
    assert error_ratio.canary == {"requests": 12_000.0, "errors": 252.0, "intervals": 10.0}
    assert metrics[1].p_value == 0.09


def test_each_metric_reads_as_one_line_with_its_key_numbers() -> None:
    lines = notice().metrics_text().splitlines()

    assert lines == [
        "error-ratio FAIL (critical): canary error-ratio ratio 2.1% vs baseline 0.4% "
        "(e-value 1,200 ≥ 20) [effect +425.0% (+210.0%..+700.0%), e-value 1,200 (bar 20)]",
        "latency-p99 INCONCLUSIVE: latency-p99: interval includes 0, 8 of 10 samples "
        "[effect +14.0% (-5.0%..+31.0%), p-value 0.09 (bar 0.02)]",
    ]


def test_a_notice_survives_json_and_reads_back_equal() -> None:
    original = notice()

    text = json.dumps(original.to_record(), allow_nan=False)

    assert Notice.from_record(json.loads(text)) == original


def test_a_notice_built_after_the_outbox_round_trip_is_the_same() -> None:
    action = notify_action()
    stored = action_from_record(json.loads(json.dumps(action_record(action))))
    assert isinstance(stored, type(action))

    rebuilt = Notice.from_action(
        stored,
        policy="web-default",
        occurred_at=1_700_000_000.0,
        base_url="https://canarist.example.com",
    )

    assert rebuilt == notice()


def test_unbounded_numbers_become_unknown_so_the_notice_stays_json() -> None:
    verdict = failing_verdict()
    error_ratio = verdict.metrics[-1]
    unbounded = error_ratio.judgement.model_copy(
        update={"e_value": float("inf"), "effect_interval": (1.0, float("inf"))}
    )
    metrics = [*verdict.metrics[:-1], error_ratio.model_copy(update={"judgement": unbounded})]
    evidence = verdict.model_copy(update={"metrics": metrics}).model_dump()
    action = replace(notify_action(), evidence=evidence)

    built = Notice.from_action(action, policy="p", occurred_at=1.0)

    assert built.metrics[0].name == "error-ratio"
    assert (built.metrics[0].e_value, built.metrics[0].effect_interval) == (None, None)
    json.dumps(built.to_record(), allow_nan=False)


def test_without_evidence_a_notice_has_no_metrics_and_no_link() -> None:
    action = replace(notify_action(), evidence={})

    built = Notice.from_action(action, policy="p", occurred_at=1.0)

    assert built.metrics == ()
    assert built.metrics_text() == ""
    assert built.report_url is None


def test_evidence_that_is_not_a_verdict_still_gives_a_notice() -> None:
    action = replace(notify_action(), evidence={"outcome": "fail", "metrics": "?"})

    built = Notice.from_action(action, policy="p", occurred_at=1.0)

    assert built.metrics == ()
    assert built.reason == action.reason


def test_the_report_link_quotes_the_rollout_id() -> None:
    assert report_url("http://h:8080/", "a/b c") == "http://h:8080/v1/rollouts/a%2Fb%20c/report"
    assert report_url(None, "r-1") is None
    assert report_url("http://h", "r-1", "{base_url}/ui/{rollout_id}") == "http://h/ui/r-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [({"kind": "exploded"}, "bad notice kind"), ({"colour": "red"}, "bad notice record")],
)
def test_a_bad_record_is_refused(change: dict[str, str], message: str) -> None:
    record = {**notice().to_record(), **change}

    with pytest.raises(ValueError, match=message):
        Notice.from_record(record)


def test_with_a_report_secret_the_link_is_signed_for_its_rollout_only() -> None:
    secret = "rotate-me-0123456789abcdef"
    expected = hmac.new(secret.encode(), b"a/b c", hashlib.sha256).hexdigest()[:32]

    signed = report_url("http://h:8080/", "a/b c", secret=secret)

    assert signed == f"http://h:8080/v1/rollouts/a%2Fb%20c/report?sig={expected}"
    assert report_signature(secret, "a/b c") == expected
    assert report_signature(secret, "a/b d") != expected
    assert report_signature(secret + "x", "a/b c") != expected
    assert report_url("http://h", "r-1", "{base_url}/r?id={rollout_id}", secret=secret) == (
        f"http://h/r?id=r-1&sig={report_signature(secret, 'r-1')}"
    )
    assert report_url(None, "r-1", secret=secret) is None


def test_a_notice_built_with_a_report_secret_carries_the_signed_link() -> None:
    built = Notice.from_action(
        notify_action(),
        policy="web-default",
        occurred_at=1_700_000_000.0,
        base_url="https://canarist.example.com",
        report_secret="rotate-me-0123456789abcdef",
    )

    signature = report_signature("rotate-me-0123456789abcdef", built.rollout_id)
    assert built.report_url == (
        f"https://canarist.example.com/v1/rollouts/{built.rollout_id}/report?sig={signature}"
    )
