"""The import contracts of pyproject.toml hold: the layers, the pure core without I/O, platforms
that do not import each other, independent seams and an acyclic policy language.

``make lint`` runs them too (``lint-imports``); here they also hold for a plain ``pytest``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert exit_code == 0, report
    for contract in (
        "The pure core does no I/O",
        "Platforms do not import each other",
        "The notify, platform and store seams are independent",
        "The policy language's modules import each other in one direction",
    ):
        assert f"{contract} KEPT" in report
