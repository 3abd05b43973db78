"""The dashboard in headless Chromium against the real API, Redis and Prometheus (conftest.py).

A person signs in through the form; the list shows the running rollout and follows it to its
next stage without a reload; the rollout page shows a new look without a reload; the page
recovers, still signed in, when the API restarts as a new app (sessions live in Redis); abort
asks for a reason and is recorded under the person's token name; a token of another namespace
sees nothing of the rollout and cannot act, not even by a forged form post. Through it all the
browser reports no script or console error and no request that leaves the origin.

"Without a reload" is checked by a mark set on ``window`` before the change: a reload would
drop it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from canarist.ui.sessions import COOKIE
from tests.canarist.report.browser import Browser, Loaded, chromium_or_skip
from tests.canarist.ui.conftest import SECRET, TOKENS, Live
from workers.notify.notice import report_signature
from workers.state import Phase

WAIT_SECONDS = 20.0
MARK = "window.__stillThisPage"
LOOKS = "document.querySelectorAll('#part-timeline tr.kind-analysis').length"
STATUS = "document.getElementById('live-status').innerText"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(chromium_or_skip()) as chromium:
        chromium.call("Network.clearBrowserCookies")
        yield chromium


def sign_in(browser: Browser, live: Live, who: str) -> Loaded:
    browser.call("Network.clearBrowserCookies")
    browser.load(live.base_url + "/ui/rollouts")
    assert browser.evaluate("location.pathname") == "/ui/sign-in"
    token = json.dumps(TOKENS[who][0])
    return browser.navigate_by(
        f"document.getElementById('token').value = {token};"
        "document.querySelector('form.confirm button').click()"
    )


def wait_for(browser: Browser, expression: str, what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.2)
    seen = browser.since_load()
    status = browser.evaluate("(document.getElementById('live-status') || {}).innerText")
    raise AssertionError(
        f"{what}: not within {WAIT_SECONDS:g} s (the page says {status!r}; "
        f"errors: {seen.errors}; requests: {seen.requests[-5:]})"
    )


def assert_clean(loaded: Loaded, origin: str) -> None:
    assert loaded.errors == []
    assert loaded.requests and all(url.startswith(origin + "/") for url in loaded.requests)


def row_cell(rollout_id: str, label: str) -> str:
    return (
        f"(document.querySelector('#rollout-{rollout_id} td[data-label=\"{label}\"]') || "
        "{innerText: ''}).innerText"
    )


def test_the_list_follows_a_running_rollout_to_its_next_stage(live: Live, browser: Browser) -> None:
    signed = sign_in(browser, live, "alice")

    assert browser.evaluate("location.pathname") == "/ui/rollouts"
    assert signed.errors == []
    assert browser.evaluate(row_cell(live.rollout_id, "Weight")) == "20%"
    assert "progressing" in browser.evaluate(row_cell(live.rollout_id, "Phase"))
    assert "(2 of 5)" in browser.evaluate(row_cell(live.rollout_id, "Stage"))
    badges = browser.evaluate(row_cell(live.rollout_id, "Last verdict"))
    assert "error-ratio:" in badges  # the outcome in words, not only a colour
    assert browser.evaluate("document.cookie") == ""  # HttpOnly: no script reads the session
    browser.evaluate(f"{MARK} = true")

    live.rollout.drive(until=lambda state: state.canary_weight == 50)

    wait_for(browser, f"{row_cell(live.rollout_id, 'Weight')} === '50%'", "the row at 50 %")
    assert browser.evaluate(MARK) is True
    assert browser.evaluate(row_cell(live.rollout_id, "Stage")) == "set weight 50% (3 of 5)"
    assert_clean(browser.since_load(), live.base_url)


def test_the_rollout_page_shows_a_new_look_without_reloading(live: Live, browser: Browser) -> None:
    sign_in(browser, live, "alice")
    loaded = browser.load(f"{live.base_url}/ui/rollouts/{live.rollout_id}")
    looks = LOOKS
    before = browser.evaluate(looks)
    assert before >= 1
    assert browser.evaluate("document.querySelectorAll('svg.chart').length") >= 3
    assert loaded.errors == []
    browser.evaluate(f"{MARK} = true")
    last_look = live.rollout.state.last_look_at

    live.rollout.drive(until=lambda state: state.last_look_at != last_look)

    wait_for(browser, f"{looks} > {before}", "the new look in the timeline")
    assert browser.evaluate(MARK) is True
    assert_clean(browser.since_load(), live.base_url)


def test_the_page_keeps_updating_and_signed_in_after_the_api_restarts(
    live: Live, browser: Browser
) -> None:
    sign_in(browser, live, "alice")
    browser.load(f"{live.base_url}/ui/rollouts/{live.rollout_id}")
    browser.evaluate(f"{MARK} = true")
    before, app_before = browser.evaluate(LOOKS), live.server.app
    live.server.stop()
    wait_for(browser, f"{STATUS}.includes('retrying')", "the page saying the connection is lost")
    last_look = live.rollout.state.last_look_at
    live.rollout.drive(until=lambda state: state.last_look_at != last_look)

    live.server.start()  # a new app: nothing of the old process survives but what Redis keeps
    assert live.server.app is not app_before

    wait_for(browser, f"{LOOKS} > {before}", "the look made while the server was down")
    assert browser.evaluate(f"{STATUS}.startsWith('Live')")  # still signed in
    assert browser.evaluate(MARK) is True
    browser.load(f"{live.base_url}/ui/rollouts")  # a new page load: the session, not sign-in
    assert "/ui/sign-in" not in browser.evaluate("location.href")


def test_another_namespaces_token_sees_nothing_and_cannot_act(live: Live, browser: Browser) -> None:
    revision = live.intake.store.load(live.rollout_id).revision
    signed = sign_in(browser, live, "bob")
    assert signed.errors == []
    assert live.rollout_id not in browser.evaluate("document.body.innerHTML")
    assert live.rollout.app not in browser.evaluate("document.body.innerText")

    page = browser.load(f"{live.base_url}/ui/rollouts/{live.rollout_id}")
    assert page.status == 404
    theirs = browser.evaluate("document.body.innerText").replace(live.rollout_id, "ID")
    browser.load(f"{live.base_url}/ui/rollouts/shop-000000-000000000000")
    unknown = browser.evaluate("document.body.innerText")
    assert theirs == unknown.replace("shop-000000-000000000000", "ID")  # as if it did not exist

    cookie = next(
        c for c in browser.call("Network.getAllCookies")["cookies"] if c["name"] == COOKIE
    )
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    with httpx.Client(base_url=live.base_url, cookies={COOKIE: cookie["value"]}) as client:
        listing = client.get("/ui/rollouts").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', listing)
        assert csrf is not None
        forged = client.post(
            f"/ui/rollouts/{live.rollout_id}/actions/abort",
            data={"csrf": csrf.group(1), "reason": "not mine"},
        )
        assert forged.status_code == 404
        live_json = client.get(f"/ui/live/rollouts/{live.rollout_id}")
        assert live_json.status_code == 404
    assert live.intake.store.load(live.rollout_id).revision == revision


def test_abort_asks_for_a_reason_and_is_recorded_under_the_persons_name(
    live: Live, browser: Browser
) -> None:
    sign_in(browser, live, "alice")
    browser.load(f"{live.base_url}/ui/rollouts/{live.rollout_id}")
    confirm = browser.navigate_by(
        "[...document.querySelectorAll('#part-actions a')]"
        ".find(a => a.innerText === 'Abort').click()"
    )
    assert confirm.errors == []
    heading = browser.evaluate("document.querySelector('h1').innerText")
    assert heading == f"Abort {live.rollout.app} v2 in shop?"
    assert browser.evaluate("document.querySelector('form.confirm').checkValidity()") is False
    browser.evaluate("document.querySelector('form.confirm button').click()")  # refused: empty
    time.sleep(0.5)
    assert browser.evaluate("location.pathname").endswith("/actions/abort")
    assert live.intake.store.load(live.rollout_id).state.phase is Phase.PROGRESSING

    done = browser.navigate_by(
        "document.getElementById('reason').value = 'latency regression seen by on-call';"
        "document.querySelector('form.confirm button').click()"
    )

    assert done.errors == []
    assert "Abort: recorded under alice" in browser.evaluate("document.body.innerText")
    final = live.rollout.drive()
    assert final.phase is Phase.ABORTED
    _, events = live.intake.get(live.rollout_id)
    by_alice = [event for event in events if event.actor == "alice"]
    assert by_alice and "latency regression seen by on-call" in by_alice[0].message
    wait_for(
        browser,
        "document.querySelector('#part-summary .phase').innerText === 'aborted'",
        "the page showing the rollout aborted",
    )
    timeline = browser.evaluate("document.getElementById('part-timeline').innerText")
    assert "alice" in timeline
    assert browser.evaluate("document.querySelectorAll('#part-actions a').length") == 1  # retry
    assert_clean(browser.since_load(), live.base_url)


def test_a_signed_report_link_needs_no_sign_in(live: Live, browser: Browser) -> None:
    browser.call("Network.clearBrowserCookies")
    sig = report_signature(SECRET, live.rollout_id)
    url = f"{live.base_url}/v1/rollouts/{live.rollout_id}/report?sig={sig}"

    loaded = browser.load(url)

    assert loaded.status == 200 and loaded.errors == []
    assert live.rollout.app in browser.evaluate("document.body.innerText")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_pages_fit_a_laptop_and_a_phone_and_are_keyboard_reachable(
    live: Live, browser: Browser, width: int
) -> None:
    sign_in(browser, live, "alice")
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}
    browser.call("Emulation.setDeviceMetricsOverride", metrics)
    try:
        for path in ("/ui/rollouts", f"/ui/rollouts/{live.rollout_id}"):
            loaded = browser.load(live.base_url + path)
            assert loaded.errors == []
            overflow = browser.evaluate(
                "Math.max(...[document.documentElement, ...document.querySelectorAll('.scroll')]"
                ".map(box => box.scrollWidth - box.clientWidth))"
            )
            wide = browser.evaluate(
                "[...document.querySelectorAll('main *')].filter(e => "
                "e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
                ".slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id)"
            )
            assert overflow <= 1, (path, overflow, wide)
            # Every control is a real link, button or labelled field: reachable by Tab.
            unlabelled = browser.evaluate(
                "[...document.querySelectorAll('input:not([type=hidden]),select,textarea')]"
                ".filter(field => !field.labels || field.labels.length === 0).length"
            )
            assert unlabelled == 0
            assert browser.evaluate("document.querySelectorAll('[onclick],[tabindex]').length") == 0
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
