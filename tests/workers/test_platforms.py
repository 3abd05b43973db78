"""The Platform seam: the registry refuses unknown names, observe touches nothing and is always
ready, and the in-memory platform records, scripts readiness and fails on demand."""

from __future__ import annotations

import pytest

from tests.workers.rollout_driver import SPEC
from workers.actions import EnsureCanary, Promote, Rollback, SetTraffic
from workers.errors import TemporaryError
from workers.platforms import (
    Failed,
    NotYet,
    Platform,
    PlatformError,
    Ready,
    UnknownPlatformError,
    platform_for,
    platform_names,
)
from workers.platforms.memory import MemoryPlatform
from workers.platforms.observe import ObservePlatform
from workers.state import RolloutState

ROLLOUT = RolloutState.new(
    "r1", app="checkout", namespace="shop", policy="demo", spec=SPEC, now=1_700_000_000.0
)


def test_the_registry_knows_observe_and_refuses_anything_else() -> None:
    assert "observe" in platform_names()
    assert isinstance(platform_for("observe"), ObservePlatform)
    with pytest.raises(UnknownPlatformError, match=r"unknown platform 'kubernetez'.*observe"):
        platform_for("kubernetez")
    with pytest.raises(LookupError):
        platform_for("memory")  # a test double is never something a job can ask for


def test_observe_accepts_every_action_and_is_always_ready() -> None:
    platform: Platform = ObservePlatform()
    for action in (EnsureCanary(), SetTraffic(25), Promote(), Rollback("bad")):
        assert platform.apply(ROLLOUT, action) is None
    assert platform.readiness(ROLLOUT, (EnsureCanary(), SetTraffic(25))) == Ready()


def test_memory_records_what_it_was_asked_in_order() -> None:
    platform = MemoryPlatform()
    platform.apply(ROLLOUT, EnsureCanary())
    platform.apply(ROLLOUT, SetTraffic(50))
    assert platform.actions_for("r1") == [EnsureCanary(), SetTraffic(50)]
    assert platform.actions_for("other") == []
    assert platform.applied[0].attempt == 1


def test_memory_readiness_follows_the_script_then_keeps_its_last_answer() -> None:
    platform = MemoryPlatform()
    assert platform.readiness(ROLLOUT, ()) == Ready()  # by default
    platform.script(NotYet("pods starting"), Failed("crash loop"))
    answers = [platform.readiness(ROLLOUT, ()) for _ in range(3)]
    assert answers == [NotYet("pods starting"), Failed("crash loop"), Failed("crash loop")]
    assert platform.readiness_calls[-1] == ("r1", ())


def test_memory_readiness_is_not_yet_until_what_the_rollout_requires_is_applied() -> None:
    platform = MemoryPlatform()
    wants = (EnsureCanary(), SetTraffic(5))
    platform.apply(ROLLOUT, EnsureCanary())  # a crash came before the weight was set
    assert platform.readiness(ROLLOUT, wants) == NotYet("memory platform: SetTraffic not applied")
    platform.apply(ROLLOUT, SetTraffic(5))
    assert platform.readiness(ROLLOUT, wants) == Ready()
    aborted = (Rollback("abort by ci"),)  # saved by the API, not applied yet
    assert platform.readiness(ROLLOUT, aborted) == NotYet("memory platform: Rollback not applied")
    platform.drift("r1")
    assert isinstance(platform.readiness(ROLLOUT, wants), NotYet)


def test_memory_fails_the_next_applies_temporarily_or_for_good() -> None:
    platform = MemoryPlatform()
    platform.fail_next(1)
    with pytest.raises(TemporaryError):
        platform.apply(ROLLOUT, SetTraffic(50))
    platform.fail_next(1, temporary=False)
    with pytest.raises(PlatformError):
        platform.apply(ROLLOUT, SetTraffic(50))
    platform.apply(ROLLOUT, SetTraffic(50))
    assert platform.actions_for("r1") == [SetTraffic(50)]  # failed calls record nothing
    with pytest.raises(ValueError, match="negative"):
        platform.fail_next(-1)
