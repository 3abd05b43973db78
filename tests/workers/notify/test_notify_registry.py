"""Routes map to notifiers by type, with no fallback; the in-memory notifier fails on request."""

from __future__ import annotations

import httpx
import pytest

from analyzer.errors import CanaristError
from tests.workers.notify.samples import notice
from workers.errors import DeliveryError
from workers.notify.alertmanager import AlertmanagerNotifier
from workers.notify.base import (
    Route,
    UnknownRouteTypeError,
    notifier_for,
    route_types,
)
from workers.notify.memory import MemoryNotifier
from workers.notify.slack import SlackNotifier
from workers.notify.webhook import WebhookNotifier


@pytest.mark.parametrize(
    ("route_type", "implementation"),
    [
        ("alertmanager", AlertmanagerNotifier),
        ("webhook", WebhookNotifier),
        ("slack", SlackNotifier),
    ],
)
def test_each_type_has_its_notifier(route_type: str, implementation: type) -> None:
    with httpx.Client(trust_env=False) as client:
        notifier = notifier_for(Route("r", route_type, "http://127.0.0.1:9"), client=client)

    assert type(notifier) is implementation
    assert route_types() == ("alertmanager", "slack", "webhook")


@pytest.mark.parametrize("route_type", ["pagerduty", "Slack", "", "memory"])
def test_an_unknown_type_is_refused(route_type: str) -> None:
    route = Route("oncall", route_type, "http://127.0.0.1:9")

    with pytest.raises(UnknownRouteTypeError) as raised:
        notifier_for(route)

    assert isinstance(raised.value, CanaristError)
    assert isinstance(raised.value, LookupError)
    assert raised.value.route_type == route_type
    assert str(raised.value) == (
        f"alert route 'oncall' has unknown type {route_type!r}; known: alertmanager, slack, webhook"
    )


def test_a_routes_repr_shows_no_secret() -> None:
    route = Route(
        "chat", "slack", "https://hooks.slack.com/services/T0/B0/s3cr3t", {"Authorization": "tok"}
    )

    shown = repr(route)

    assert "s3cr3t" not in shown
    assert "tok'" not in shown
    assert shown == (
        "Route(name='chat', type='slack', url='https://hooks.slack.com/…', "
        "headers=['Authorization'], severity='critical')"
    )


def test_a_notifier_closes_the_client_it_owns_but_not_a_shared_one() -> None:
    with httpx.Client(trust_env=False) as shared:
        borrowing = WebhookNotifier(Route("r", "webhook", "http://127.0.0.1:9"), client=shared)
        borrowing.close()
        assert not shared.is_closed

    with WebhookNotifier(Route("r", "webhook", "http://127.0.0.1:9")) as owning:
        owned = owning.client
    assert owned.is_closed


def test_the_memory_notifier_fails_the_next_posts_then_records() -> None:
    memory = MemoryNotifier()
    memory.fail_next(2, retry_after=3.0)

    for _ in range(2):
        with pytest.raises(DeliveryError) as raised:
            memory.post(notice())
        assert raised.value.temporary
        assert raised.value.retry_after == 3.0
    memory.post(notice())

    assert memory.attempts == 3
    assert memory.notices == [notice()]
    assert memory.delivered("r-1/1/aborted") == [notice()]


def test_the_memory_notifier_can_fail_permanently() -> None:
    memory = MemoryNotifier()
    memory.fail_next(temporary=False)

    with pytest.raises(DeliveryError) as raised:
        memory.post(notice())
    memory.post(notice("paused"))

    assert not raised.value.temporary
    assert [sent.kind for sent in memory.notices] == ["paused"]
