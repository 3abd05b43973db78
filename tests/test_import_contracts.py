"""The import contracts of pyproject.toml hold: the layers, the pure core without I/O, platforms
that do not import each other, independent seams and an acyclic policy language.

``make lint`` runs them too (``lint-imports``); here they also hold for a plain ``pytest``. The
linter runs in a process of its own: it configures logging, which would silence the loggers of
the tests that run after it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_every_import_contract_is_kept() -> None:
    run = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--config", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    for contract in (
        "The pure core does no I/O",
        "Platforms do not import each other",
        "The notify, platform and store seams are independent",
        "The policy language's modules import each other in one direction",
        "The PromQL parser is imported in one module",
    ):
        assert f"{contract} KEPT" in report
