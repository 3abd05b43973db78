"""A policy's ``hooks:`` written wrong: each problem names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy
from analyzer.policy.hooks import HookPoint

HEAD = """\
name: checkout
metrics:
  - name: errors
    kind: counts
    errors: sum(rate(e{ {{ selector }} }[1m]))
    total: sum(rate(t{ {{ selector }} }[1m]))
strategy:
  type: canary
  steps:
    - set_weight: 10
    - set_weight: 100
hooks:
"""  # hooks start at line 13


def problems(tmp_path: Path, hooks: str) -> list[tuple[str, int | None, str]]:
    path = tmp_path / "checkout.yaml"
    path.write_text(HEAD + hooks)
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert str(path) in str(refused.value)
    return [(p.dotted_path, p.line, p.message) for p in refused.value.problems]


def test_a_good_hook_reads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text(HEAD + "  - {name: smoke, point: pre_rollout, route: smoke-tests}\n")
    [hook] = load_policy(path).hooks
    assert hook.point is HookPoint.PRE_ROLLOUT and hook.timeout.total_seconds() == 10
    assert (hook.retries, hook.critical, hook.metadata) == (2, True, {})


def test_a_bad_point_names_the_points(tmp_path: Path) -> None:
    hooks = "  - name: smoke\n    route: smoke-tests\n    point: before_rollout\n"
    [(field, line, message)] = problems(tmp_path, hooks)
    assert (field, line) == ("hooks[0].point", 15)
    assert "before_rollout" in message and "pre_rollout" in message


def test_a_missing_route_is_named(tmp_path: Path) -> None:
    [(field, line, message)] = problems(tmp_path, "  - name: smoke\n    point: pre_rollout\n")
    assert field == "hooks[0].route" and line == 13 and "route" in message


def test_a_url_as_route_says_where_urls_go(tmp_path: Path) -> None:
    hooks = "  - name: smoke\n    point: analysis\n    route: https://smoke.example/run\n"
    [(field, line, message)] = problems(tmp_path, hooks)
    assert (field, line) == ("hooks[0].route", 15) and "CANARIST_HOOK_ROUTES" in message


@pytest.mark.parametrize(
    ("hooks", "field", "words"),
    [
        (
            "  - {name: smoke, point: analysis, route: r}\n"
            "  - {name: smoke, point: pre_rollout, route: r}\n",
            "hooks",
            "two hooks are named 'smoke'",
        ),
        ("  - {name: errors, point: analysis, route: r}\n", "hooks", "has a metric's name"),
        (
            "  - {name: smoke, point: analysis, route: r, timeout: 5m}\n",
            "hooks[0].timeout",
            "at most 60s",
        ),
        (
            "  - {name: smoke, point: analysis, route: r, retries: 9}\n",
            "hooks[0].retries",
            "5",
        ),
    ],
)
def test_hook_mistakes(tmp_path: Path, hooks: str, field: str, words: str) -> None:
    [(found, line, message)] = problems(tmp_path, hooks)
    assert found == field and line is not None and line >= 12 and words in message
