"""`canarist policy validate` is what SREs run in CI on their policy repos: exit codes and lines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from canarist.cli import app
from canarist.settings import ApiToken

ROOT = Path(__file__).parents[2]
runner = CliRunner()


def test_validate_shipped_policies_exits_0() -> None:
    files = sorted(str(path) for path in (ROOT / "policies").glob("*.yaml"))
    result = runner.invoke(app, ["policy", "validate", *files])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == len(files)


def test_validate_prints_file_line_field_and_exits_2(tmp_path: Path) -> None:
    good = ROOT / "policies" / "default-canary.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        good.read_text()
        .replace("tolerance: 0.05", "tolerance: lots")
        .replace("set_weight: 100", "set_weight: 90")
    )
    result = runner.invoke(app, ["policy", "validate", str(good), str(bad)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    tolerance_line = 1 + next(
        number for number, text in enumerate(bad.read_text().splitlines()) if "lots" in text
    )
    assert (
        f"{bad}:{tolerance_line}: metrics[1].tolerance: expected a number or a percentage such "
        "as 10%, found the text 'lots'"
    ) in result.output
    # the cross-field problem is reported with the field's, not after it is fixed
    assert "strategy.steps: steps never reach 100% (the last set_weight is 90)" in result.output
    assert lines[-1] == "1 of 2 policies invalid"


def test_validate_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: (document): cannot read file" in result.output


def test_validate_refuses_hostile_files_with_file_and_line_and_no_traceback(
    tmp_path: Path,
) -> None:
    good = (ROOT / "policies" / "default-canary.yaml").read_text()
    latin1 = tmp_path / "latin1.yaml"
    broken = good.replace("#   http_requests", "#   \u00e9 http_requests", 1).encode("latin-1")
    latin1.write_bytes(broken)
    bomb = tmp_path / "bomb.yaml"
    levels = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 7)]
    bomb.write_text("\n".join(levels) + "\n")
    huge = tmp_path / "huge.yaml"
    huge.write_text(good + "#\n" * 200_000)

    started = time.monotonic()
    result = runner.invoke(app, ["policy", "validate", str(latin1), str(bomb), str(huge)])

    assert time.monotonic() - started < 5.0
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit(2), not a crash
    offset = broken.index(b"\xe9")
    assert f"{latin1}:3: (document): byte 0xe9 at offset {offset} is not UTF-8" in result.output
    assert f"{bomb}:5: l4[0]: the document has more than 10000 YAML nodes" in result.output
    assert f"{huge}:" in result.output and "larger than 256 KiB" in result.output
    assert result.output.splitlines()[-1] == "3 of 3 policies invalid"


def test_schema_command_prints_the_committed_schema() -> None:
    result = runner.invoke(app, ["policy", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads((ROOT / "policies" / "schema.json").read_text())


def test_console_script_is_installed() -> None:
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "canarist"), "policy", "validate", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0
    assert "FILE:LINE" in completed.stdout


def test_token_new_prints_a_token_and_only_its_hash_for_settings() -> None:
    result = runner.invoke(app, ["token", "new", "--name", "ci", "--namespace", "shop"])
    assert result.exit_code == 0
    token = result.output.split(": ", 1)[1].splitlines()[0]
    digest = result.output.split("sha256: ")[1].split()[0]
    entry = ApiToken(name="ci", sha256=digest, namespaces=["shop"])
    assert entry.matches(token) and not entry.matches(token + "x")
    assert entry.allows("shop") and not entry.allows("payments")


def test_token_new_grants_read_only_unless_roles_are_named() -> None:
    plain = runner.invoke(app, ["token", "new", "--name", "dashboard"])
    assert plain.exit_code == 0
    assert '    roles: ["read"]' in plain.output
    argv = ["token", "new", "--name", "ci", "--namespace", "shop", "--role", "submit"]
    made = runner.invoke(app, [*argv, "--role", "operate", "--role", "submit"])
    assert made.exit_code == 0, made.output
    token = made.output.split(": ", 1)[1].splitlines()[0]
    entry = ApiToken.model_validate_json(made.output.splitlines()[-1])
    assert (entry.name, entry.namespaces, entry.roles) == ("ci", ["shop"], ["submit", "operate"])
    assert entry.matches(token)
    assert '    roles: ["submit", "operate"]' in made.output
    refused = runner.invoke(app, ["token", "new", "--name", "x", "--role", "write"])
    assert refused.exit_code == 2
    assert "--role: Input should be 'read', 'submit', 'operate' or 'admin'" in refused.stderr
