#!/usr/bin/env python3
"""Take the README's screenshot of a rollout report: docs/report.png.

    .venv/bin/python scripts/screenshot-report.py                  # the sample rollout
    .venv/bin/python scripts/screenshot-report.py --html FILE.html # any saved report

Without ``--html`` it plays the report tests' sample incident end to end: it starts its own
Prometheus (canarist/demo/stack.py, on a free loopback port, stopped by PID at the end), writes
the traffic of a checkout service whose canary serves four times the baseline's 5xx ratio,
drives the rollout under the default policy through the real engine and analyzer into an
in-memory store, renders the report (kept where ``--keep-html`` says) and photographs its top
with ``chromium --headless --screenshot``. Needs the Debian packages ``prometheus`` and
``chromium`` (scripts/install-system-packages.sh).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's packages, tests.* included, from any cwd

from analyzer.sources.prometheus import PrometheusSource  # noqa: E402
from canarist.demo.stack import start_prometheus  # noqa: E402
from canarist.report import render_report, write_report  # noqa: E402
from tests.canarist.report.browser import CHROMIUM, screenshot  # noqa: E402
from tests.canarist.report.rollout_scenario import (  # noqa: E402
    SHIPPED_POLICIES,
    Clock,
    Rollout,
    past_start,
)
from tests.workloads import Behaviour  # noqa: E402
from workers.intake import Intake  # noqa: E402
from workers.store import MemoryStateStore  # noqa: E402


def sample_report(workdir: Path) -> str:
    """The HTML report of a canary aborted for its errors, from a real run."""
    prometheus = start_prometheus(workdir / "prometheus")
    try:
        store, clock = MemoryStateStore(), Clock(0.0)
        intake = Intake(
            store,
            SHIPPED_POLICIES,
            clock,
            lambda rollout_id, revision: None,
            alert_routes={"oncall"},
        )
        rollout = Rollout(
            intake,
            prometheus.url,
            clock,
            policy="default-canary",
            canary=Behaviour(error_ratio=0.035),
            start=past_start(1),
            app="checkout",  # a fresh Prometheus each run: the name is free
        )
        state = rollout.drive()
        with PrometheusSource(prometheus.url) as source:
            policy = intake.policy(state.policy)
            return render_report(store, source, policy, state.id, now=time.time())
    finally:
        prometheus.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, help="photograph this saved report instead")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--keep-html", type=Path, help="also save the sample report here")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1800)
    options = parser.parse_args()
    if not CHROMIUM.is_file():
        print(
            f"{CHROMIUM} is missing: scripts/install-system-packages.sh chromium", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="canarist-screenshot-") as workdir:
        page = options.html
        if page is None:
            html = sample_report(Path(workdir))
            page = write_report(options.keep_html or Path(workdir) / "report.html", html)
        url = page.resolve().as_uri()
        shot = screenshot(url, options.output, width=options.width, height=options.height)
    print(f"{shot} ({options.width}x{options.height}) from {options.html or 'the sample rollout'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
