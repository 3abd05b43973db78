"""``canarist load`` as a process: it refuses settings it cannot load (exit 2), and otherwise
reads the store until SIGTERM, then stops (exit 0). What it sends is tested end to end in
tests/workers/platforms/local/test_local_load.py, with its runner in the test's process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarist.cli import app
from canarist.demo.stack import ServiceProcess

CANARIST = Path(sys.executable).with_name("canarist")


def test_settings_that_do_not_load_stop_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("CANARIST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CANARIST_WATCH_NAMESPACES", "Not_A_Namespace")
    result = CliRunner().invoke(app, ["load"])
    assert result.exit_code == 2
    assert "the settings do not load" in result.stderr


def test_it_runs_until_sigterm(redis_server: ServiceProcess, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARIST_")}
    env |= {"CANARIST_REDIS__URL": redis_server.url, "CANARIST_POLICY_DIR": str(tmp_path)}
    log = tmp_path / "load.log"
    with log.open("w") as output:
        process = subprocess.Popen(  # stopped below by its PID
            [str(CANARIST), "load"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        time.sleep(3.0)  # a few polls of the store
        assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert "Traceback" not in log.read_text()
