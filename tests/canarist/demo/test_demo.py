"""The demo's scenario, shortened, end to end: real processes, NGINX, Prometheus, Celery, Redis
and Alertmanager. The healthy release must be promoted, the bad one aborted with its alert in
Alertmanager and its report saved, and nothing the demo started may be left running."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from canarist.demo.run import Demo, DemoOptions, run_releases
from canarist.demo.stack import pid_exists
from canarist.demo.view import LiveView

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def test_the_healthy_release_is_promoted_and_the_bad_one_aborted_with_an_alert(
    tmp_path: Path,
) -> None:
    options = DemoOptions(
        workdir=tmp_path / "demo", policy_dir=POLICIES, time_scale=40, rate=60, release_timeout=150
    )
    seen: list[Mapping[str, Any]] = []
    # a terminal, as `make demo` has: the live panel is drawn at every poll
    console = Console(file=io.StringIO(), width=160, force_terminal=True, color_system=None)
    live = LiveView(console)

    def watch(details: Sequence[Mapping[str, Any]], counts: Mapping[tuple[str, int], int]) -> None:
        seen.extend(details)
        live(details, counts)

    with Demo(options) as demo, live:
        results = run_releases(demo, watch)
        pids = [service.pid for service in demo.services]
        instances = demo.platform.status("demo", "checkout")
        counts = demo.load.counts() if demo.load else {}
        # the alert's link is what on-call opens in a browser: signed, no token needed
        (alert,) = results[1].alerts
        page = httpx.get(alert["annotations"]["report_url"], trust_env=False, timeout=30)

    healthy, bad = results
    assert (healthy.release.version, healthy.phase) == ("v2", "promoted"), healthy.reason
    assert (bad.release.version, bad.phase) == ("v3", "aborted"), bad.reason
    assert "error-ratio" in bad.reason or "latency" in bad.reason

    assert alert["labels"]["alertname"] == "RolloutAborted"
    assert alert["labels"]["rollout_id"] == bad.rollout_id
    assert alert["annotations"]["version"] == "v3"
    assert bad.rollout_id in alert["annotations"]["report_url"]
    assert "sig=" in alert["annotations"]["report_url"]
    assert page.status_code == 200 and "aborted" in page.text
    assert not healthy.alerts

    for result in results:
        assert result.report is not None and result.report.is_file()
        assert result.rollout_id in result.report.read_text(encoding="utf-8")

    # the router really sent users to each version; after the abort, v1 is gone and v2 serves
    assert {version for version, _status in counts} >= {"v1", "v2", "v3"}
    assert (instances.stable_version, instances.canary_version) == ("v2", None)
    assert (instances.weight, instances.match) == (0, ())
    # the live view saw the bad release while only the targeted audience had it
    assert any(d["version"] == "v3" and d["phase"] == "progressing" for d in seen)
    assert not any(pid_exists(pid) for pid in pids)
    # what the terminal showed: every step, the look that failed, the rollback
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "v2  phase          promoted: v2 is the stable version" in shown
    assert "v3  phase          rolled back: " in shown
