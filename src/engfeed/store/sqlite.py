"""The SQLite backend: one file, the default for one reader.

WAL mode, numbered migrations (``migrations/NNNN_*.sql``), an FTS5 index kept in step with
``articles`` by triggers. Each thread gets its own connection so the web server's background
refresh can write while pages read; writers take ``BEGIN IMMEDIATE`` under a process lock,
so one writes at a time and readers never wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engfeed.errors import QueryError, StoreError
from engfeed.models import ArticleFilter, SchemaStatus
from engfeed.store.base import NO_FILTER, Store, migrations
from engfeed.store.sql import Connection

__all__ = ["SQLiteStore"]

SCHEMA_VERSION_TABLE = "schema_migrations"


class SQLiteStore(Store):
    """A store in one SQLite file (``:memory:`` for a throwaway one)."""

    backend = "sqlite"

    def __init__(self, path: Path | str, *, migrate: bool = True) -> None:
        """Open (creating it and its folder if needed) and migrate the store at ``path``
        (``migrate=False``: leave the schema as it is, for ``db status``).

        Raises :class:`StoreError`, naming the path, when it cannot be a store (its folder is
        a file, it is a device or a folder, it is not writable, it is not SQLite) or when a
        newer engfeed wrote it; in the last case nothing at all is written to it.
        """
        super().__init__(path)
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._schedule_fd: int | None = None
        if str(self.path) != ":memory:":
            self._check_path()
            self._check_schema_version()
        try:
            if migrate:
                self.migrate()
            else:
                self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc

    def _check_path(self) -> None:
        if self.path.exists() and not self.path.is_file():
            kind = "a folder" if self.path.is_dir() else "not a regular file"
            raise StoreError(f"cannot open store {self.path}: it is {kind}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise StoreError(
                f"cannot open store {self.path}: {exc.filename} is a file, not a folder"
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc.strerror or exc}") from exc

    def _applied_version(self, conn: sqlite3.Connection) -> int:
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SCHEMA_VERSION_TABLE,)
        ).fetchone()
        if not has_table:
            return 0
        found = conn.execute(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE}").fetchone()
        return int(found[0]) if found and found[0] is not None else 0

    def _check_schema_version(self) -> None:
        """Refuse a store written by a newer engfeed, reading it through a read-only connection."""
        if not self.path.is_file():
            return
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.DatabaseError:
            return  # the normal open reports it
        try:
            found = self._applied_version(conn)
        except sqlite3.DatabaseError:
            return
        finally:
            conn.close()
        known = _latest()
        if found > known:
            raise StoreError(
                f"this store was written by a newer engfeed (schema {found} > {known}); upgrade engfeed"
                f" to open {self.path}"
            )

    # -- connections -------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def claim_schedule(self) -> bool:
        """An exclusive ``flock`` on ``<store>-schedule.lock``, held while this handle lives
        (the system drops it when the process ends, however it ends)."""
        if self._schedule_fd is not None or str(self.path) == ":memory:":
            return True
        fd = os.open(self.path.with_name(self.path.name + "-schedule.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._schedule_fd = fd
        return True

    def close_all(self) -> None:
        self.close()
        if self._schedule_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._schedule_fd)
            self._schedule_fd = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction. A store that cannot be written (a read-only file or folder)
        is a :class:`StoreError` naming it, with nothing written."""
        with self._write_lock:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self._raise_if_unwritable(exc)
                raise
            try:
                yield conn
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    self._raise_if_unwritable(exc)
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                self._raise_if_unwritable(exc)
                raise

    def _raise_if_unwritable(self, exc: sqlite3.OperationalError) -> None:
        """A StoreError from ``exc`` when the file cannot be written (SQLITE_READONLY,
        SQLITE_PERM, SQLITE_CANTOPEN and their extended codes)."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (3, 8, 14):
            raise StoreError(f"cannot write to store {self.path}: {exc} (check its permissions)") from exc

    # -- migrations --------------------------------------------------------------------
    def migrate(self) -> int:
        conn = self.conn
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (version INTEGER PRIMARY KEY)")
        done = {row[0] for row in conn.execute(f"SELECT version FROM {SCHEMA_VERSION_TABLE}")}
        version = max(done, default=0)
        for number, sql in migrations(self.backend):
            if number in done:
                continue
            with self.transaction() as tx:
                for statement in _split_sql(sql):
                    tx.execute(statement)
                tx.execute(f"INSERT INTO {SCHEMA_VERSION_TABLE}(version) VALUES (?)", (number,))
            version = number
        return version

    def schema_status(self) -> SchemaStatus:
        return SchemaStatus(self.backend, str(self.path), self._applied_version(self.conn), _latest())

    def change_marker(self) -> tuple[int, int]:
        """``PRAGMA data_version`` moves when another connection commits; ``total_changes``
        moves when this one writes."""
        conn = self.conn
        return int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes

    # -- full text (FTS5) ---------------------------------------------------------------
    def _fts_ranked_sql(
        self, match: str, flt: ArticleFilter, *, limit: int, window: int | None
    ) -> list[tuple[int, float]]:
        """BM25 over title (weight 5), excerpt (2) and body (1).

        FTS5 computes BM25 for every match before ``ORDER BY score LIMIT`` applies, so a
        common term costs in proportion to its matches (~2 us each here: 22 ms for 16k of
        100k articles). With ``window`` (and no filter) only the newest ``window`` matches
        by rowid, i.e. the most recently stored, are scored: FTS5 walks its doclists in
        rowid order and stops there, so the cost is bounded and the answer exact whenever
        there are fewer matches than that. With a filter the answer is always exact.
        """
        try:
            return self._fts_rows(match, flt, limit=limit, window=window)
        except sqlite3.OperationalError as exc:  # a malformed expression, or an interrupt
            raise QueryError(f"full-text query failed: {exc}") from exc

    def _fts_rows(
        self, match: str, flt: ArticleFilter, *, limit: int, window: int | None
    ) -> list[tuple[int, float]]:
        where, params = self.filter_sql(flt, mutes=False)
        if window is not None and where == NO_FILTER:
            # Ranked inside SQLite: the first step does all the work with the GIL released,
            # and only ``limit`` rows come back to Python.
            sql = (
                "SELECT id, score FROM (SELECT rowid AS id, bm25(articles_fts, 5.0, 2.0, 1.0) AS score"
                " FROM articles_fts WHERE articles_fts MATCH ? ORDER BY rowid DESC LIMIT ?)"
                " ORDER BY score, id DESC LIMIT ?"
            )
            rows = self.conn.execute(sql, [match, max(window, limit), limit]).fetchall()
            return [(r[0], -float(r[1])) for r in rows]
        if where == NO_FILTER:
            sql = (
                "SELECT rowid, bm25(articles_fts, 5.0, 2.0, 1.0) AS score FROM articles_fts"
                " WHERE articles_fts MATCH ? ORDER BY score LIMIT ?"
            )
            rows = self.conn.execute(sql, [match, limit]).fetchall()
        else:
            # The filter applies before ranking: SQLite checks it per match and computes BM25
            # only for the matches that pass (exact, and faster than ranking all matches).
            sql = (
                "SELECT f.rowid, bm25(articles_fts, 5.0, 2.0, 1.0) AS score FROM articles_fts f"
                f" JOIN articles a ON a.id = f.rowid WHERE articles_fts MATCH ? AND {where}"
                " ORDER BY score LIMIT ?"
            )
            rows = self.conn.execute(sql, [match, *params, limit]).fetchall()
        return [(r[0], -float(r[1])) for r in rows]

    def fts_search_bounded(
        self, match: str, flt: ArticleFilter, *, limit: int, max_steps: int, window: int | None = None
    ) -> list[tuple[int, float]] | None:
        """BM25 scores every matching row before LIMIT applies, so a broad OR query costs
        in proportion to its matches (about 0.1 ms per 1000 steps here). The cap counts
        work, not time, so the same query on the same data always gives the same answer.
        """
        conn = self.conn
        calls = 0
        budget = max(1, max_steps // 1000)

        def progress() -> int:
            nonlocal calls
            calls += 1
            return 1 if calls > budget else 0

        conn.set_progress_handler(progress, 1000)
        try:
            return self.fts_search(match, flt, limit=limit, window=window)
        except (QueryError, sqlite3.OperationalError) as exc:  # the latter: interrupted outside FTS
            if calls > budget:
                return None
            if isinstance(exc, QueryError):
                raise
            raise QueryError(f"full-text query failed: {exc}") from exc
        finally:
            conn.set_progress_handler(None, 1000)


def _latest() -> int:
    return max((number for number, _ in migrations(SQLiteStore.backend)), default=0)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (``BEGIN ... END;``) whole."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buf.strip():
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
