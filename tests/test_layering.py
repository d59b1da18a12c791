"""The package's layering, checked on its source: who may import what."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "engfeed"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_web_layer_and_the_cli_do_not_import_the_store() -> None:
    # They go through the Feed facade; filters are plain data from engfeed.models.
    users = [SRC / "cli.py", *sorted((SRC / "web").glob("*.py"))]
    offenders = {p.name for p in users if any(m.startswith("engfeed.store") for m in imported_modules(p))}
    assert offenders == set()


def test_sqlite3_stays_in_the_store() -> None:
    allowed = {"feed.py"}  # the conn=tx plumbing of mute matching, until Storage owns its transactions
    offenders = {
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if "sqlite3" in imported_modules(p) and p.parent.name != "store" and p.name not in allowed
    }
    assert offenders == set()
