"""Headless Chromium for the report tests and scripts/screenshot-report.py.

``Browser`` starts ``/usr/bin/chromium --headless`` with its own profile and a DevTools port
chosen by Chromium (read back from ``DevToolsActivePort``), and talks the DevTools protocol over
a websocket (websocket-client, installed with the kubernetes client). ``Browser.load`` opens a
URL and returns what a person would not see but a broken page leaves behind: uncaught script
exceptions, console errors, browser log errors (a Content-Security-Policy violation, a resource
that failed to load), and every network request, so a test can insist that a page loads nothing
from anywhere else. ``screenshot`` is Chromium's own ``--screenshot``.

Chromium is a Debian package (``chromium``) that ``make test`` installs. Without it these tests
skip with the reason, except under CI (``CI=true``), where a missing browser is a failure.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
import websocket

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars")
FLAGS += ("--disable-dev-shm-usage", "--disable-extensions", "--force-device-scale-factor=1")
START_TIMEOUT, LOAD_TIMEOUT = 30.0, 30.0


def chromium_or_skip() -> Path:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = (
        f"{CHROMIUM} is missing: install the Debian package with "
        "'scripts/install-system-packages.sh chromium' (make test does)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser test")
    pytest.skip(reason)


@dataclass
class Loaded:
    """What loading one page left behind."""

    status: int | None = None
    exceptions: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.exceptions + self.console_errors + self.log_errors


class Browser:
    """One headless Chromium and one DevTools session with one page; stopped by its PID."""

    def __init__(self, binary: Path = CHROMIUM) -> None:
        self.binary = binary
        self.profile = Path(tempfile.mkdtemp(prefix="canarist-chromium-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.socket: websocket.WebSocket | None = None
        self.ids = itertools.count(1)
        self.pending: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        argv = [str(self.binary), *FLAGS, "--remote-debugging-port=0"]
        argv += [f"--user-data-dir={self.profile}", "about:blank"]
        log = (self.profile / "chromium.log").open("wb")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        port = self._devtools_port()
        with httpx.Client(trust_env=False, timeout=10) as client:
            target = client.put(f"http://127.0.0.1:{port}/json/new?about:blank").json()
        self.socket = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=LOAD_TIMEOUT, suppress_origin=True
        )
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.socket is not None:
            self.socket.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _devtools_port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.profile / "chromium.log").read_text(errors="replace")
                raise RuntimeError(f"chromium exited while starting:\n{log[-3000:]}")
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.05)
        raise RuntimeError(f"chromium did not open its DevTools port within {START_TIMEOUT:g} s")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a DevTools command and return its result; events meanwhile are kept."""
        assert self.socket is not None
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.pending.append(message)

    def load(self, url: str) -> Loaded:
        """Open ``url``, wait for its load event, and report what the page did."""
        self.pending.clear()
        self.call("Page.navigate", {"url": url})
        return self._until_loaded(url)

    def navigate_by(self, expression: str) -> Loaded:
        """Run ``expression`` (a click, a form's submit) and wait for the page it opens."""
        self.pending.clear()
        self.evaluate(expression)
        return self._until_loaded("")

    def since_load(self) -> Loaded:
        """What the page did since it loaded (the script's requests, its errors), as far as
        the events read so far tell."""
        loaded = Loaded()
        for event in self.pending:
            _record(loaded, event, "")
        return loaded

    def _until_loaded(self, url: str) -> Loaded:
        loaded, seen = Loaded(), 0
        deadline = time.monotonic() + LOAD_TIMEOUT
        while time.monotonic() < deadline:
            while seen < len(self.pending):
                event, seen = self.pending[seen], seen + 1
                if event.get("method") == "Page.loadEventFired":
                    self.call("Runtime.evaluate", {"expression": "1"})  # flush late events
                    for late in self.pending[seen:]:
                        _record(loaded, late, url)
                    return loaded
                _record(loaded, event, url)
            assert self.socket is not None
            self.pending.append(json.loads(self.socket.recv()))
        raise TimeoutError(f"{url} did not finish loading within {LOAD_TIMEOUT:g} s")

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")


def _record(loaded: Loaded, event: dict[str, Any], url: str) -> None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        loaded.exceptions.append(details.get("exception", {}).get("description") or str(details))
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        loaded.console_errors.append(" ".join(str(a.get("value")) for a in params["args"]))
    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
        entry = params["entry"]
        loaded.log_errors.append(f"{entry.get('source')}: {entry['text']} {entry.get('url', '')}")
    elif method == "Network.requestWillBeSent":
        loaded.requests.append(params["request"]["url"])
    elif method == "Network.responseReceived" and params["response"]["url"] == url:
        loaded.status = params["response"]["status"]


def screenshot(
    url: str, output: Path, *, width: int = 1200, height: int = 1800, binary: Path = CHROMIUM
) -> Path:
    """A PNG of the top ``width`` x ``height`` pixels of ``url``, by ``chromium --screenshot``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="canarist-chromium-") as profile:
        argv = [str(binary), *FLAGS, f"--user-data-dir={profile}"]
        argv += [f"--window-size={width},{height}", f"--screenshot={output.resolve()}", url]
        done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    if done.returncode != 0 or not output.is_file():
        error = done.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"chromium --screenshot failed ({done.returncode}):\n{error}")
    return output
