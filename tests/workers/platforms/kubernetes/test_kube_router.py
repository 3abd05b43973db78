"""The router registry: keyed on the policy's router words, every one registered, no fallback."""

from __future__ import annotations

import pytest

from analyzer.errors import UnknownNameError
from analyzer.policy.traffic import Router
from workers.platforms.base import PlatformError
from workers.platforms.kubernetes.router import ROUTERS, router_for


def test_every_router_a_policy_may_name_is_registered_under_that_name() -> None:
    assert ROUTERS.names == tuple(sorted(Router))
    for name in Router:
        assert router_for(name.value, kube=None).name is name  # type: ignore[arg-type]


def test_an_unknown_router_is_a_permanent_platform_error_naming_the_known_ones() -> None:
    with pytest.raises(PlatformError) as raised:
        router_for("istio", kube=None)  # type: ignore[arg-type]
    assert isinstance(raised.value, UnknownNameError)
    assert str(raised.value) == (
        "unknown traffic router 'istio'; known: gateway_api, nginx_ingress, replicas"
    )
