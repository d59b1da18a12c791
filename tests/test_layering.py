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


def test_each_database_driver_stays_in_its_backend() -> None:
    # The shared SQL speaks to engfeed.store.sql.Connection; only a backend module names its driver.
    homes = {"sqlite3": "store/sqlite.py", "psycopg": "store/postgres.py"}
    offenders = {
        (driver, str(p.relative_to(SRC)))
        for p in SRC.rglob("*.py")
        for driver, home in homes.items()
        if any(m == driver or m.startswith(driver + ".") for m in imported_modules(p))
        and str(p.relative_to(SRC)) != home
    }
    assert offenders == set()
