"""The analyzer's error tree, as analyzer/errors.py draws it, is the tree of its classes: every
public error reaches the root, and each says by its class whether retrying can help."""

from __future__ import annotations

import pytest

from analyzer import errors
from analyzer.errors import (
    CanaristError,
    JudgeError,
    PermanentError,
    QueryError,
    TemporaryError,
    TemporarySourceError,
)
from tests.error_trees import drawn_tree, misdrawn, public_errors


def test_the_drawing_is_the_tree_of_the_analyzers_errors() -> None:
    assert misdrawn(errors, "analyzer") == []
    assert drawn_tree(errors)[0].name == "CanaristError"
    assert {each.says for each in drawn_tree(errors)} == {"temporary", "permanent", None}


def test_every_public_error_of_the_analyzer_reaches_the_root() -> None:
    errors_found = public_errors("analyzer")
    assert JudgeError in errors_found
    assert [cls for cls in errors_found if not issubclass(cls, CanaristError)] == []


@pytest.mark.parametrize(
    ("error", "temporary"),
    [(TemporarySourceError("timeout"), True), (QueryError("4xx"), False), (JudgeError("x"), False)],
)
def test_temporary_and_permanent_are_one_or_the_other(
    error: CanaristError, temporary: bool
) -> None:
    assert isinstance(error, TemporaryError) is temporary
    assert isinstance(error, PermanentError) is not temporary


def test_a_temporary_error_waits_what_it_was_told_or_the_default() -> None:
    assert TemporaryError("busy").retry_after == errors.DEFAULT_RETRY_AFTER
    assert TemporaryError("busy", 2.0).wait_seconds() == 2.0
    assert TemporaryError("busy", None).wait_seconds(7.0) == 7.0


def test_a_judge_error_is_still_a_value_error_for_callers_that_catch_one() -> None:
    assert issubclass(JudgeError, ValueError)
