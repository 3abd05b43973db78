"""The report in a real browser: headless Chromium opens the alert's signed link from the API.

The API runs under uvicorn on a free loopback port over the session's rollouts; Chromium loads
the page as an on-call engineer would, and the test reads what the browser reports through the
DevTools protocol: no script error, no console or CSP error, no request to anywhere but the page
itself, and the decision and the charts in the rendered DOM. A deliberately broken page served
by the same server shows that these checks do catch a broken page.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from canarist.api import create_app
from canarist.demo.stack import HOST, free_port
from tests.canarist.report.api_access import alert_link, app_settings
from tests.canarist.report.browser import Browser, chromium_or_skip, screenshot
from tests.canarist.report.rollout_scenario import Played

BROKEN_PAGE = (
    "<!DOCTYPE html><html><body><p>broken</p><script>undefined_function()</script>"
    '<img src="http://192.0.2.1/pixel.png"></body></html>'
)


@dataclass(frozen=True)
class Served:
    base_url: str
    app: FastAPI


@pytest.fixture(scope="module")
def served(played: Played) -> Iterator[Served]:
    app = create_app(app_settings(played), played.intake)
    app.add_api_route("/broken", lambda: HTMLResponse(BROKEN_PAGE), include_in_schema=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="report-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(f"http://{HOST}:{port}", app)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(chromium_or_skip()) as chromium:
        yield chromium


def test_the_signed_link_renders_in_chromium_without_errors(
    served: Served, browser: Browser, played: Played
) -> None:
    url = served.base_url + alert_link(played.aborted.id)

    loaded = browser.load(url)

    assert loaded.status == 200
    assert loaded.errors == []
    assert loaded.requests == [url]  # nothing fetched from anywhere else, not even a font
    text = browser.evaluate("document.body.innerText")
    assert f"Aborted: {played.aborted.abort_reason}" in " ".join(text.split())
    assert browser.evaluate("document.scripts.length") == 0
    charts = browser.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(svg => {"
        " const box = svg.getBoundingClientRect();"
        " return [Math.round(box.width), Math.round(box.height),"
        "  svg.querySelectorAll('path').length]; })"
    )
    assert len(charts) == 6
    assert all(width > 500 and height > 100 for width, height, _ in charts)
    data_charts = charts[:3]
    assert all(paths == 2 for _, _, paths in data_charts)  # baseline and canary, drawn


def test_the_checks_catch_a_broken_page(served: Served, browser: Browser) -> None:
    loaded = browser.load(f"{served.base_url}/broken")

    assert any("undefined_function" in exception for exception in loaded.exceptions)
    assert "http://192.0.2.1/pixel.png" in loaded.requests


def test_a_screenshot_of_the_report_is_a_png(
    served: Served, played: Played, tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    output = tmp_path / "report.png"

    screenshot(served.base_url + alert_link(played.promoted.id), output, binary=chromium)

    header = output.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1200, 1800)
