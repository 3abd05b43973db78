"""How fast Canarist recovers from faults on a real stack: measured here, never asserted in tests.

    python -m benchmarks.recovery [--runs 5] [--json FILE]

Starts the demo's stack (canarist.demo.run.Demo: Redis, Prometheus, Alertmanager, ``canarist
api``/``worker``/``beat`` with the production timings — leases of 15 s renewed while a task
works, reconcile every 10 s for rollouts overdue by 15 s — the local platform's NGINX, two
instances of the demo service and Poisson load at 50 requests/s), then, ``--runs`` times each,
submits a healthy release under the shipped default-canary policy at demo scale (every duration
divided by 20: looks every 3 s), waits for its first analysis (5% of traffic on the canary),
and breaks something:

  abort    POST /v1/rollouts/ID/abort: seconds until the API says aborted, until the router
           sends nothing to the new version, and requests the new version served after the
           API said so (must be 0)
  worker   SIGKILL the worker (a new one starts at once, as a supervisor would): seconds from
           the kill until the rollout takes its next step
  router   SIGKILL NGINX, master and workers, during the analysis: seconds until the router
           answers again (the rollout's next wake-up restarts it: at demo scale the first look
           comes 6 s after the weight is set), requests lost meanwhile, and whether the rollout
           recorded the drift instead of blaming missing data
  idle     the same with no rollout in flight: only the reconciler's heal (every 10 s) can
           restart it, as it must whatever the phase

Each figure is reported as the median and the range over the runs, side by side, in one table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from canarist.demo import scenario
from canarist.demo.load import NO_ANSWER, VERSION_HEADER
from canarist.demo.run import Demo, DemoOptions
from canarist.demo.stack import HOST, ServiceProcess
from workers.actions import EventKind

POLICY = "default-canary"
HEALTHY = ("--latency", "0.02", "--error-rate", "0.005")
FAULTS = ("abort", "worker", "router", "idle")


class Bench:
    """The stack and the releases; one release per fault run."""

    def __init__(self, demo: Demo) -> None:
        self.demo, self.versions = demo, iter(range(2, 10_000))
        self.stable = scenario.STABLE
        self.api = demo.client()
        self.router = httpx.Client(base_url=f"http://{HOST}:{demo.router_port}", timeout=1.0)

    def release(self) -> tuple[str, str]:
        """Submit a healthy version and wait for its first analysis; its id and version."""
        version = f"v{next(self.versions)}"
        job = {
            "app": scenario.APP, "namespace": scenario.NAMESPACE, "version": version,
            "image": scenario.service_command(version, HEALTHY), "policy": POLICY,
            "platform": "local", "baseline": f'app="{scenario.APP}",version="{self.stable}"',
            "canary": f'app="{scenario.APP}",version="{version}"',
        }  # fmt: skip
        answer = self.api.post("/v1/rollouts", json=job)
        answer.raise_for_status()
        rollout_id = str(answer.json()["id"])
        self.wait(rollout_id, analysing, 60.0)
        return rollout_id, version

    def detail(self, rollout_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/v1/rollouts/{rollout_id}")
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    def wait(
        self, rollout_id: str, done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            detail = self.detail(rollout_id)
            if done(detail):
                return detail
            if time.monotonic() > deadline:
                raise TimeoutError(f"{rollout_id}: {detail['phase']} {detail['stage_label']}")
            time.sleep(0.05)

    def served(self, count: int) -> dict[str, int]:
        """Which version answered ``count`` requests through the router (half of them from
        Korea, the targeted audience of the shipped targeted policy)."""
        versions: dict[str, int] = {}
        for number in range(count):
            headers = {"x-region": "KR"} if number % 2 else {}
            version = self.router.get("/", headers=headers).headers.get(VERSION_HEADER, "-")
            versions[version] = versions.get(version, 0) + 1
        return versions

    def finish(self, rollout_id: str) -> None:
        """Leave the app on its stable version for the next run."""
        detail = self.detail(rollout_id)
        if not detail["terminal"]:
            self.api.post(f"/v1/rollouts/{rollout_id}/abort", json={"reason": "bench: next run"})
            self.wait(rollout_id, lambda d: bool(d["terminal"]), 120.0)

    # -- the faults ------------------------------------------------------------------------------
    def abort(self) -> dict[str, float]:
        rollout_id, version = self.release()
        started = time.monotonic()
        self.api.post(f"/v1/rollouts/{rollout_id}/abort", json={"reason": "bench"})
        self.wait(rollout_id, lambda d: d["phase"] == "aborted", 60.0)
        said = time.monotonic() - started
        after = self.served(200).get(version, 0)  # requests sent after "rolled back"
        gone = time.monotonic() + 30  # its instances stop once the router has left them
        while self.demo.platform.status(scenario.NAMESPACE, scenario.APP).canary_version:
            if time.monotonic() > gone:
                raise TimeoutError(f"{version}'s instances still run 30 s after the abort")
            time.sleep(0.01)
        return {"api_says_aborted_s": said, "served_by_it_afterwards": float(after)}

    def worker(self) -> dict[str, float]:
        rollout_id, _ = self.release()
        seen = len(self.detail(rollout_id)["events"])
        old = next(s for s in self.demo.services if s.name == "worker" and s.running)
        os.kill(old.pid, signal.SIGKILL)
        killed = time.monotonic()
        new = ServiceProcess(old.name, old.argv, old.workdir, old.port, old.probe, env=old.env)
        self.demo.services.append(new.start())
        self.wait(rollout_id, lambda d: len(d["events"]) > seen, 180.0)
        self.finish(rollout_id)
        return {"next_step_after_kill_s": time.monotonic() - killed}

    def router_fault(self) -> dict[str, float]:
        rollout_id, _ = self.release()
        outage = self.kill_router()
        drift = self.wait(rollout_id, drifted, 60.0)
        self.finish(rollout_id)
        return {**outage, "drift_recorded": float(drifted(drift))}

    def idle_router(self) -> dict[str, float]:
        time.sleep(1.0)  # whatever the last run left settles
        return self.kill_router()

    def kill_router(self) -> dict[str, float]:
        """SIGKILL NGINX's process group; how long until it answers, and requests lost."""
        load = self.demo.load
        assert load is not None
        lost_before = load.counts().get(("-", NO_ANSWER), 0)
        master = json.loads((self.demo.platform.state_dir / "nginx" / "router.json").read_text())
        os.killpg(int(master["master"]["pid"]), signal.SIGKILL)
        killed = time.monotonic()
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if self.router.get("/").status_code == 200:
                    break
            if time.monotonic() - killed > 120:
                raise TimeoutError("the router did not come back within 120 s")
            time.sleep(0.05)
        back = time.monotonic() - killed
        time.sleep(2.5)  # requests in flight at the restart settle (the load times out at 2 s)
        lost = load.counts().get(("-", NO_ANSWER), 0) - lost_before
        return {"router_back_s": back, "requests_lost": float(lost)}


def analysing(detail: dict[str, Any]) -> bool:
    """At 5%, the stage applied, the analysis under way."""
    ready = any(e["kind"] == EventKind.PLATFORM_READY for e in detail["events"])
    return (
        detail["phase"] == "progressing"
        and detail["canary_weight"] == 5
        and ready
        and (str(detail["stage_label"] or "").startswith("analyze"))
    )


def drifted(detail: dict[str, Any]) -> bool:
    return any(e["kind"] == EventKind.PLATFORM_DRIFT for e in detail["events"])


def summarise(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = sorted({key for sample in samples for key in sample})
    return {
        key: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": len(values),
        }
        for key in keys
        if (values := [sample[key] for sample in samples if key in sample])
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recovery", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs of each fault (default 5)")
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument("--json", type=Path, help="write the report here too")
    parser.add_argument("--workdir", type=Path, help="keep the stack's files (logs) here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results: dict[str, list[dict[str, float]]] = {fault: [] for fault in args.faults}
    with Demo(DemoOptions(rate=50.0, workdir=args.workdir)) as demo:
        bench = Bench(demo)
        runs = {
            "abort": bench.abort,
            "worker": bench.worker,
            "router": bench.router_fault,
            "idle": bench.idle_router,
        }
        for number in range(args.runs):
            for fault in args.faults:
                results[fault].append(runs[fault]())
                print(f"run {number + 1}/{args.runs} {fault}: {results[fault][-1]}", flush=True)
    report = {
        "command": "python -m benchmarks.recovery " + " ".join(argv or sys.argv[1:]),
        "date": datetime.now().isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - started, 1),
        "faults": {fault: summarise(samples) for fault, samples in results.items()},
        "samples": results,
    }
    print(table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def table(report: dict[str, Any]) -> str:
    lines = ["| fault | figure | median | min | max | runs |", "|---|---|---|---|---|---|"]
    for fault, figures in report["faults"].items():
        for name, spread in figures.items():
            cells = [f"{spread[k]:.2f}" for k in ("median", "min", "max")]
            lines.append(f"| {fault} | {name} | {' | '.join(cells)} | {spread['runs']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
