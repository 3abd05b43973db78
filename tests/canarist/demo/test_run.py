"""`canarist demo` refuses to start, saying what to install, when a server is missing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarist.cli import app
from canarist.demo import run
from canarist.demo.stack import ServiceProcess, pid_exists


def test_a_missing_server_is_named_with_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(run, "NEEDED", {"canarist-no-such-server": "canarist-no-such-pkg"})

    result = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path / "demo")])

    assert result.exit_code == 2
    assert "missing Debian packages: canarist-no-such-pkg" in result.output
    assert "make demo" in result.output
    assert not (tmp_path / "demo").exists()  # nothing was started or written


def test_without_a_workdir_a_refusal_leaves_no_temporary_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(run, "NEEDED", {"canarist-no-such-server": "canarist-no-such-pkg"})
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR

    with pytest.raises(run.DemoError):
        run.Demo(run.DemoOptions())
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_work_directory_keeps_only_the_reports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(run, "NEEDED", {})
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    demo = run.Demo(run.DemoOptions())
    (demo.workdir / "reports").mkdir()
    (demo.workdir / "reports" / "v3-checkout-1.html").write_text("<html></html>")
    (demo.workdir / "redis").mkdir()
    (demo.workdir / "redis" / "appendonly.aof").write_text("*1")
    (demo.workdir / "canarist.yaml").write_text("redis: {}")

    demo.stop()

    assert sorted(p.name for p in demo.workdir.iterdir()) == ["reports"]
    assert (demo.workdir / "reports" / "v3-checkout-1.html").is_file()


def test_keep_keeps_only_a_finished_demo_a_failure_stops_everything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(run, "NEEDED", {})

    def start_something(demo: run.Demo) -> None:
        sleeper = ServiceProcess("sleeper", ["sleep", "60"], tmp_path, 0, lambda _h, _p: True)
        demo.services.append(sleeper.start())

    monkeypatch.setattr(run.Demo, "_start", start_something)
    demo = run.Demo(run.DemoOptions(workdir=tmp_path / "demo", keep=True))
    with pytest.raises(run.DemoError), demo:
        pid = demo.services[0].pid
        raise run.DemoError("a release could not be submitted")
    assert not pid_exists(pid)
