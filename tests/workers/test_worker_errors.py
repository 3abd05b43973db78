"""The workers' error tree, as workers/errors.py draws it, is the tree of their classes: every
public error reaches the root, each says by its class whether retrying can help, and a delivery
error says it the same way as every other."""

from __future__ import annotations

import pytest

from analyzer.errors import CanaristError, PermanentError, TemporaryError
from tests.error_trees import drawn_tree, misdrawn, public_errors
from workers import errors
from workers.errors import (
    DeliveryError,
    InvalidJobError,
    NotFound,
    PermanentDeliveryError,
    StoreUnavailable,
    TemporaryDeliveryError,
    UnknownPolicyError,
    WorkerError,
)


def test_the_drawing_is_the_tree_of_the_workers_errors() -> None:
    assert misdrawn(errors, "workers") == []
    drawn = {each.name: each for each in drawn_tree(errors)}
    assert drawn["WorkerError"].parent == "CanaristError"
    assert drawn["TemporaryDeliveryError"].says == "temporary"


# Outcomes the Kubernetes platform signals to itself (a 409 on a patch, or on a create that it
# adopts; a 410 on a watch, after which the GitOps watch lists again); caught inside
# workers/platforms/kubernetes/, never raised out of it.
PLATFORM_SIGNALS = {"Stale", "AlreadyExists", "Expired"}


def test_every_public_error_of_the_workers_reaches_the_root() -> None:
    errors_found = public_errors("workers")
    assert StoreUnavailable in errors_found
    outside = [cls.__name__ for cls in errors_found if not issubclass(cls, CanaristError)]
    assert sorted(outside) == sorted(PLATFORM_SIGNALS)


def test_retry_later_is_said_by_one_class() -> None:
    assert errors.TemporaryError is TemporaryError  # re-exported, not a second class
    for temporary in (StoreUnavailable, TemporaryDeliveryError):
        assert issubclass(temporary, TemporaryError) and issubclass(temporary, WorkerError)
    for permanent in (NotFound, PermanentDeliveryError, UnknownPolicyError, InvalidJobError):
        assert issubclass(permanent, PermanentError) and issubclass(permanent, WorkerError)


@pytest.mark.parametrize(
    ("error", "temporary"),
    [
        (TemporaryDeliveryError("503", retry_after=7.0, status=503), True),
        (TemporaryDeliveryError("refused"), True),
        (PermanentDeliveryError("404", status=404), False),
    ],
)
def test_a_delivery_error_says_temporary_by_its_class(
    error: DeliveryError, temporary: bool
) -> None:
    assert error.temporary is temporary
    assert isinstance(error, TemporaryError) is temporary


def test_a_delivery_error_keeps_the_receivers_wait_even_when_it_said_none() -> None:
    said, unsaid = TemporaryDeliveryError("429", retry_after=7.0), TemporaryDeliveryError("503")
    assert (said.retry_after, said.wait_seconds()) == (7.0, 7.0)
    assert (unsaid.retry_after, unsaid.wait_seconds(3.0)) == (None, 3.0)
    assert PermanentDeliveryError("400", status=400).retry_after is None
