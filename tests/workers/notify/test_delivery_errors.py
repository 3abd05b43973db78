"""What went wrong decides whether the outbox retries: one mapping for every HTTP route type."""

from __future__ import annotations

import httpx
import pytest

from canarist.demo.stack import free_port
from tests.workers.notify.capture import CaptureServer, Reply
from tests.workers.notify.samples import notice
from workers.errors import DeliveryError
from workers.notify.base import Route, notifier_for
from workers.notify.transport import TIMEOUT, new_client

ROUTE_TYPES = ["alertmanager", "webhook", "slack"]


def post_expecting_error(route_type: str, url: str, client: httpx.Client) -> DeliveryError:
    notifier = notifier_for(Route("oncall", route_type, url), client=client)
    with pytest.raises(DeliveryError) as raised:
        notifier.post(notice("aborted"))
    return raised.value


@pytest.mark.parametrize("route_type", ROUTE_TYPES)
@pytest.mark.parametrize(
    ("status", "temporary"),
    [
        *[(status, True) for status in (500, 502, 503, 408, 429)],
        *[(status, False) for status in (400, 401, 403, 404, 410)],
    ],
)
def test_server_errors_are_temporary_and_client_errors_permanent(
    route_type: str, status: int, temporary: bool, capture: CaptureServer, client: httpx.Client
) -> None:
    capture.reply(Reply(status, b"invalid_payload" if status == 400 else b"nope"))

    error = post_expecting_error(route_type, capture.url, client)

    assert (error.status, error.temporary) == (status, temporary)
    assert f"HTTP {status}" in str(error)
    assert "'oncall'" in str(error)


@pytest.mark.parametrize("route_type", ROUTE_TYPES)
def test_the_receivers_answer_is_in_the_message(
    route_type: str, capture: CaptureServer, client: httpx.Client
) -> None:
    capture.reply(Reply(400, b"invalid_payload"))

    error = post_expecting_error(route_type, capture.url, client)

    assert str(error).endswith("HTTP 400: invalid_payload")


@pytest.mark.parametrize(("value", "expected"), [("7", 7.0), ("0", 0.0), ("soon", None)])
def test_retry_after_is_passed_on(
    value: str, expected: float | None, capture: CaptureServer, client: httpx.Client
) -> None:
    capture.reply(Reply(429, b"rate_limited", {"Retry-After": value}))

    error = post_expecting_error("slack", capture.url, client)

    assert error.temporary
    assert error.retry_after == expected


def test_retry_after_as_a_date_counts_from_now(
    capture: CaptureServer, client: httpx.Client
) -> None:
    capture.reply(Reply(503, b"", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))

    error = post_expecting_error("webhook", capture.url, client)

    assert error.retry_after == 0.0  # a date in the past: retry now


def test_a_redirect_is_not_followed_and_is_permanent(
    capture: CaptureServer, client: httpx.Client
) -> None:
    capture.reply(Reply(301, b"", {"Location": capture.url + "/elsewhere"}))

    error = post_expecting_error("webhook", capture.url, client)

    assert not error.temporary
    assert len(capture.requests) == 1


@pytest.mark.parametrize("route_type", ROUTE_TYPES)
def test_a_refused_connection_is_temporary(route_type: str, client: httpx.Client) -> None:
    error = post_expecting_error(route_type, f"http://127.0.0.1:{free_port()}", client)

    assert error.temporary
    assert error.status is None


def test_a_slow_receiver_times_out_as_temporary(capture: CaptureServer) -> None:
    capture.reply(Reply(200, b"ok", delay=1.0))
    with httpx.Client(timeout=0.2, trust_env=False) as impatient:
        error = post_expecting_error("webhook", capture.url, impatient)

    assert error.temporary
    assert "timed out" in str(error)


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", "http://"])
def test_an_unusable_url_is_permanent(url: str, client: httpx.Client) -> None:
    error = post_expecting_error("webhook", url, client)

    assert not error.temporary


def test_the_secret_part_of_a_url_never_appears_in_a_message(
    capture: CaptureServer, client: httpx.Client
) -> None:
    capture.reply(Reply(404, b"channel_not_found"))

    error = post_expecting_error(
        "slack", capture.url + "/services/T0/B0/s3cr3t?token=t0k3n", client
    )

    assert "s3cr3t" not in str(error)
    assert "t0k3n" not in str(error)
    assert f"({capture.url}/…)" in str(error)


def test_an_owned_client_has_timeouts_and_follows_no_redirects() -> None:
    with new_client() as owned:
        assert owned.timeout == TIMEOUT
        assert owned.timeout.connect == 5.0
        assert owned.timeout.read == 10.0
        assert not owned.follow_redirects
