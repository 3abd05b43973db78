#!/usr/bin/env python3
"""Take the README's screenshot of the dashboard's rollouts list: docs/dashboard.png.

    .venv/bin/python scripts/screenshot-dashboard.py

It starts its own Prometheus (canarist/demo/stack.py, on a free loopback port, stopped by PID
at the end), plays three rollouts of the report tests' scenario through the real engine and
analyzer into an in-memory store (one promoted, one aborted for its errors, one running),
serves the API with its dashboard under uvicorn on a free loopback port, signs in through the
form in headless Chromium (tests/canarist/report/browser.py) and captures the page at 1280 px.
Needs the Debian packages ``prometheus`` and ``chromium`` (scripts/install-system-packages.sh).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's packages, tests.* included, from any cwd

import uvicorn  # noqa: E402

from canarist.api import create_app  # noqa: E402
from canarist.demo.stack import HOST, free_port, start_prometheus  # noqa: E402
from canarist.settings import ApiToken, PrometheusSettings, Settings, hash_token  # noqa: E402
from tests.canarist.report.browser import CHROMIUM, Browser  # noqa: E402
from tests.canarist.report.rollout_scenario import (  # noqa: E402
    QUICK_POLICY,
    SHIPPED_POLICIES,
    Clock,
    Rollout,
    past_start,
)
from tests.workloads import Behaviour  # noqa: E402
from workers.intake import Intake  # noqa: E402
from workers.store import MemoryStateStore  # noqa: E402

TOKEN = "cnr_screenshot-oncall"


def play(workdir: Path, prometheus_url: str) -> tuple[Intake, Path]:
    policies = workdir / "policies"
    policies.mkdir()
    (policies / "default-canary.yaml").write_text(
        (SHIPPED_POLICIES / "default-canary.yaml").read_text()
    )
    (policies / "quick-canary.yaml").write_text(QUICK_POLICY)
    clock = Clock(0.0)
    intake = Intake(
        MemoryStateStore(), policies, clock, lambda rollout_id, revision: None,
        alert_routes={"oncall"},
    )  # fmt: skip

    def rollout(app: str, policy: str, canary: Behaviour, hours_ago: float) -> Rollout:
        start = past_start(hours_ago)
        return Rollout(intake, prometheus_url, clock, policy=policy, canary=canary, start=start,
                       app=app)  # fmt: skip

    rollout("search", "quick-canary", Behaviour(), 3).drive()
    rollout("checkout", "default-canary", Behaviour(error_ratio=0.035), 2).drive()
    running = rollout("cart", "quick-canary", Behaviour(), 1)
    running.drive(until=lambda state: state.canary_weight == 50 and state.last_look_at is not None)
    return intake, policies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=520)
    options = parser.parse_args()
    if not CHROMIUM.is_file():
        print(
            f"{CHROMIUM} is missing: scripts/install-system-packages.sh chromium", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="canarist-screenshot-") as workdir:
        prometheus = start_prometheus(Path(workdir) / "prometheus")
        try:
            intake, policies = play(Path(workdir), prometheus.url)
            token = ApiToken(name="oncall", sha256=hash_token(TOKEN), roles=["operate"])
            settings = Settings(
                api_tokens=[token], policy_dir=policies,
                prometheus=PrometheusSettings(url=prometheus.url),
            )  # fmt: skip
            port = free_port()
            config = uvicorn.Config(create_app(settings, intake), host=HOST, port=port,
                                    log_level="warning")  # fmt: skip
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started and thread.is_alive():
                time.sleep(0.05)
            try:
                shot = capture(f"http://{HOST}:{port}", options)
            finally:
                server.should_exit = True
                thread.join(10)
        finally:
            prometheus.stop()
    print(f"{shot} ({options.width}x{options.height})")
    return 0


def capture(base_url: str, options: argparse.Namespace) -> Path:
    with Browser(CHROMIUM) as browser:
        metrics = {"width": options.width, "height": options.height, "deviceScaleFactor": 1,
                   "mobile": False}  # fmt: skip
        browser.call("Emulation.setDeviceMetricsOverride", metrics)
        browser.load(base_url + "/ui/sign-in")
        browser.navigate_by(
            f"document.getElementById('token').value = {json.dumps(TOKEN)};"
            "document.querySelector('form.confirm button').click()"
        )
        time.sleep(2.5)  # one poll: the page says it is live
        data = browser.call("Page.captureScreenshot", {"format": "png"})["data"]
    options.output.parent.mkdir(parents=True, exist_ok=True)
    output: Path = options.output
    output.write_bytes(base64.b64decode(data))
    return output


if __name__ == "__main__":
    sys.exit(main())
