"""``canarist backtest --suite``: the file is checked like a policy, the run exits 0, 4 or 5.

A suite is what SREs keep in the policy repo and run in CI on every policy change, so a typo
must be an error with its file and line (``expcet:`` used to drop the expectation silently),
and a case decided otherwise than its ``expect:`` exits 5, apart from usage errors' 2.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarist.cli import app
from canarist.demo.stack import ServiceProcess, free_port
from tests.promwrite import write_samples
from tests.workloads import Behaviour, http_service

ROOT = Path(__file__).parents[2]
POLICY = ROOT / "policies" / "default-canary.yaml"
runner = CliRunner()


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the only line of ``path`` containing ``text``."""
    (number,) = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return number


def case(name: str, app_name: str, start: str, end: str, *extra: str) -> str:
    return (
        f"  - name: {name}\n    start: {start}\n    end: {end}\n"
        f'    baseline: \'app="{app_name}",version="v1"\'\n'
        f'    canary: \'app="{app_name}",version="v2"\'\n' + "".join(f"    {e}\n" for e in extra)
    )


def test_a_typo_names_the_file_line_and_key_and_every_problem_is_reported(
    tmp_path: Path,
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"policy: {POLICY}\nprometeus: http://127.0.0.1:{free_port()}\ncases:\n"
        + case("one", "shop", "2026-01-05T10:00:00Z", "2026-01-05T10:40:00Z", "expcet: abort")
        + case("two", "shop", "yesterday", "now", "expect: abandon", "args: {route: /pay}")
        + case("three", "shop", "1767607200", "now-1h", "expect: promote", "expect: abort")
    )
    result = runner.invoke(app, ["backtest", "--suite", str(suite), "--json"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    expect_two = "'promote' or 'inconclusive'"
    assert result.stderr.splitlines() == [  # in the order of the file
        f"{suite}:2: prometeus: unknown key 'prometeus' (did you mean 'prometheus'?)",
        f"{suite}:{line_of(suite, 'expcet')}: cases[0].expcet: unknown key 'expcet' "
        "(did you mean 'expect'?)",
        f"{suite}:{line_of(suite, 'yesterday')}: cases[1].start: 'yesterday': use RFC 3339, "
        "Unix seconds, now or now-30m",
        f"{suite}:{line_of(suite, 'abandon')}: cases[1].expect: Input should be 'abort', "
        f"{expect_two} (got 'abandon')",
        f"{suite}:{line_of(suite, 'expect: abort')}: cases[2].expect: duplicate key 'expect'",
    ]


def test_an_unreadable_or_empty_suite_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    listed = tmp_path / "list.yaml"
    listed.write_text("- name: one\n")
    for path, message in [
        (tmp_path / "missing.yaml", ": (document): cannot read file: No such file or directory"),
        (empty, ":1: (document): the file is empty: a suite is a mapping of policy: and cases:"),
        (listed, ":1: (document): a suite is a mapping of policy: and cases:"),
    ]:
        result = runner.invoke(app, ["backtest", "--suite", str(path)])
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [f"{path}{message}"]


def test_a_case_policy_or_args_that_do_not_fit_are_located_in_the_suite(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"policy: {POLICY}\nprometheus: http://127.0.0.1:{free_port()}\ncases:\n"
        + case("one", "shop", "now-1h", "now", "policy: policies/nope.yaml")
        + case("two", "shop", "now-1h", "now", "args: {route: /pay}")
        + case("three", "shop", "now-1h", "now").replace('version="v2"', "version=v2")
    )
    result = runner.invoke(app, ["backtest", "--suite", str(suite)])
    assert result.exit_code == 2, result.output
    (three,) = [line for line in result.stderr.splitlines() if "cases[2]" in line]
    assert three.startswith(f"{suite}:{line_of(suite, 'version=v2')}: cases[2].canary: ")
    suite.write_text(suite.read_text().replace("version=v2", 'version="v2"'))
    result = runner.invoke(app, ["backtest", "--suite", str(suite)])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"{suite}:{line_of(suite, 'nope.yaml')}: cases[0].policy: no policy file at "
        f"{tmp_path / 'policies' / 'nope.yaml'}",
        f"{suite}:{line_of(suite, 'args:')}: cases[1].args: policy 'default-canary' declares "
        "no arg route; declared: none",
    ]


@pytest.fixture(scope="module")
def recent(prometheus_server: ServiceProcess) -> Iterator[str]:
    """The last 35 minutes of a canary with 5x the baseline's errors, to the minute."""
    start = float(int(time.time() // 60 * 60) - 35 * 60)
    series = http_service("suite-errors", "v1", start, 30, Behaviour(), seed=50)
    series += http_service(
        "suite-errors", "v2", start, 30, Behaviour(requests_per_second=12.5, error_ratio=0.05),
        seed=51,
    )  # fmt: skip
    write_samples(prometheus_server.url, series)
    yield prometheus_server.url


def test_relative_times_own_policies_and_inconclusive_expectations(
    recent: str, tmp_path: Path
) -> None:
    lenient = tmp_path / "policies" / "lenient.yaml"
    lenient.parent.mkdir()
    lenient.write_text(
        POLICY.read_text()
        .replace("name: default-canary", "name: lenient-canary")
        .replace("tolerance: 0.25", "tolerance: 10")  # 11x the baseline's error ratio is fine
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"policy: {POLICY}\nprometheus: {recent}\ncases:\n"
        + case("incident", "suite-errors", "now-35m", "now-5m", "expect: abort")
        + case("lenient", "suite-errors", "now-35m", "now-5m", "expect: promote",
               "policy: policies/lenient.yaml")
        + case("later", "suite-errors", "now-4m", "now", "expect: inconclusive")
    )  # fmt: skip
    result = runner.invoke(app, ["backtest", "--suite", str(suite), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["cases"]}
    assert {name: row["decision"] for name, row in rows.items()} == {
        "incident": "abort",
        "lenient": "promote",
        "later": "inconclusive",  # nothing after now-5m: no data is never a promote
    }
    assert [row["policy"] for row in report["cases"]] == [
        "default-canary",
        "lenient-canary",
        "default-canary",
    ]
    assert report["summary"] == {
        "cases": 3,
        "with_expectation": 3,
        "failed": 0,
        "confusion": {
            "abort": {"abort": 1},
            "promote": {"promote": 1},
            "inconclusive": {"inconclusive": 1},
        },
    }

    suite.write_text(suite.read_text().replace("expect: inconclusive", "expect: promote"))
    result = runner.invoke(app, ["backtest", "--suite", str(suite)], env={"COLUMNS": "200"})
    assert result.exit_code == 5, result.output
    assert "2 passed, 1 failed" in result.stdout
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("│ ") and not line.startswith("│  ")  # a row, not its wrapped reason
    ]
    assert [row[:4] + row[5:6] for row in cells] == [  # without "at": it moves with the clock
        ["incident", "default-canary", "abort", "abort", "yes"],
        ["lenient", "lenient-canary", "promote", "promote", "yes"],
        ["later", "default-canary", "promote", "inconclusive", "NO"],
    ]


def test_a_suite_against_an_unreachable_prometheus_exits_4(recent: str, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"policy: {POLICY}\nprometheus: {recent}\ncases:\n"
        + case("incident", "suite-errors", "now-35m", "now-5m", "expect: abort")
    )
    dead = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["backtest", "--suite", str(suite), "--prometheus", dead])
    assert result.exit_code == 4, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: cannot reach Prometheus at {dead}: Connection refused (12 of 12 queries failed)"
    ]
