"""The dashboard's own files, served from the package: its script, its stylesheet, and the
report's stylesheet (canarist/report/page.py's, the one the report page inlines), so the
dashboard needs no inline style and loads nothing from another host."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from canarist.report.page import STYLE

FILES = Path(__file__).with_name("static")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
REPORT_CSS = "report.css"


@cache
def _shipped() -> dict[str, tuple[bytes, str]]:
    files = {path.name: (path.read_bytes(), _TYPES[path.suffix]) for path in FILES.iterdir()
             if path.suffix in _TYPES}  # fmt: skip
    return {**files, REPORT_CSS: (STYLE.encode(), _TYPES[".css"])}


def static_file(name: str) -> tuple[bytes, str] | None:
    """The file's bytes and media type; None for any name but the few shipped."""
    return _shipped().get(name)
