"""The demo's live panel and summary render whatever the API answers, open intervals included."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from canarist.demo.view import LiveView, rollout_panel, traffic_table

DETAIL: dict[str, Any] = {
    "id": "checkout-1",
    "app": "checkout",
    "version": "v3",
    "policy": "targeted-canary",
    "phase": "progressing",
    "stage_index": 1,
    "stage_count": 7,
    "stage_label": "analyze 45s",
    "canary_weight": 0,
    "abort_reason": None,
    "last_verdict": {
        "reason": "latency failed",
        "evidence": {
            "metrics": [
                {
                    "name": "latency",
                    "judgement": {
                        "outcome": "fail",
                        "reason": "canary latency p99 0.0761 vs baseline 0.0374",
                        "effect": 1.03,
                        "effect_interval": [0.4, None],  # open above: JSON null
                        "e_value": 5.6e8,
                        "threshold": 200.0,
                    },
                },
                {
                    "name": "memory",
                    "judgement": {"outcome": "inconclusive", "reason": "waits", "p_value": 0.3},
                },
            ]
        },
    },
    "events": [
        {"id": "1-0", "at": "2026-11-27T04:35:51+00:00", "kind": "stage", "message": "stage 2/7"}
    ],
}


def rendered(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_the_panel_shows_stage_weight_and_each_metrics_evidence() -> None:
    text = rendered(rollout_panel(DETAIL))
    assert "stage 2/7: analyze 45s" in text
    assert "+1.03 [+0.4, …]" in text and "e=5.6e8 / 200" in text
    assert "p=0.3" in text and "decision: latency failed" in text


def test_the_live_view_prints_each_event_once_on_a_terminal() -> None:
    console = Console(file=io.StringIO(), width=140, force_terminal=True, color_system=None)
    with LiveView(console) as live:
        live([DETAIL], {("v2", 200): 90, ("v3", 500): 4, ("-", 0): 1})
        live([DETAIL], {("v2", 200): 95})
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert out.count("stage 2/7") >= 1
    assert out.count("04:35:51 v3  stage") == 1


def test_unanswered_requests_are_counted_apart() -> None:
    text = rendered(traffic_table({("v2", 200): 90, ("v3", 500): 4, ("-", 0): 2}))
    assert "(no answer within the timeout)" in text
    assert "v3" in text and "100.00%" in text
