"""The PostgreSQL backend: one shared database for a team, several processes and machines.

Selected by a ``postgresql://`` URL (``ENGFEED_DATABASE_URL`` or ``--database-url``). Needs
the optional ``psycopg`` package (``pip install 'engfeed[postgres]'``); without it, opening
such a store raises :class:`StoreError` saying so. The store's shared SQL (``?`` parameters)
runs through :class:`PgConnection`, which turns it into psycopg's ``%s`` form once per
statement text.

How it keeps the store's invariants on a server:

* **One writer at a time.** ``transaction()`` takes a transaction-scoped advisory lock
  (``pg_advisory_xact_lock``) after ``BEGIN``: every writer, in any process on any machine,
  waits for the one before it, as SQLite's ``BEGIN IMMEDIATE`` makes them. The store's
  read-modify-write steps (passage tokens, digest claims, rule matching) rely on it. Writes
  are short (one source, one batch), so the lock costs little; readers never take it.
* **Migrations** are numbered on their own (``migrations/postgresql/``) and applied under
  the same lock, so two processes starting at once migrate once. A schema newer than this
  engfeed knows is refused before anything is written.
* **Full text** is a weighted ``tsvector`` (title A, excerpt B, body D) in a narrow table
  ``article_fts`` with a GIN index, kept by a trigger, queried with ``websearch_to_tsquery``
  from the same quoted terms :func:`engfeed.query.fts_match` builds, and ranked BM25-like:
  per term, ``ts_rank`` with field weights 1 : 0.4 : 0.2 (the 5 : 2 : 1 of SQLite's BM25),
  saturated, times the term's IDF. It differs from FTS5's BM25 in detail (snowball vs
  porter stems, no length normalisation); on the relevance set the hybrid top 10 agree at
  0.94 (bench/backends.py).
* **Connections** come from a pool (psycopg_pool, ``ENGFEED_DB_POOL``, 20 by default): a
  thread takes one on first use and gives it back when it ends, so worker threads that come
  and go never pile up connections on the server.
* **Concept search** runs in the database when the server has pgvector (the default there;
  ``ENGFEED_VECTORS=memory`` keeps the in-process index): each document vector has a
  half-precision copy in the narrow table ``article_vectors``, filled from the stored blobs
  by :meth:`PostgresStore.sync_vectors`, searched exactly below ``HNSW_MIN_ROWS`` vectors and
  through an HNSW index above (see there for the measurements).
* **Change detection** reads the WAL position (``pg_current_wal_lsn()``): it moves on every
  commit anywhere in the cluster, so an unrelated write costs one needless index refresh,
  never a missed one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from engfeed.errors import DatabaseUnavailable, QueryError, StoreError
from engfeed.models import ArticleFilter, SchemaStatus
from engfeed.store.base import NO_FILTER, Store, migrations
from engfeed.store.sql import Connection, Cursor

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["PgConnection", "PostgresStore", "match_terms", "psycopg_sql", "redact_url", "websearch_text"]

log = logging.getLogger("engfeed.store")

SCHEMA_VERSION_TABLE = "schema_migrations"
#: The advisory lock key every writer takes (any constant; "engfeed" in ASCII).
WRITE_LOCK = 0x656E6766656564
#: The advisory lock key of the background schedule ("engsched").
SCHEDULE_LOCK = 0x656E6773636865
#: Vectors from which concept search in the database uses an HNSW index instead of an exact
#: scan. Measured here (bench/pgvector.py: 2 cores, 384 dimensions, the 44 judged queries,
#: top 100): an exact scan costs ~0.3-0.45 us a vector (7.8 ms at 17k real vectors, 28 ms at
#: 100k); the index answers in 3.2-3.6 ms at 17k (recall@10 0.998, @100 0.995) and 7-10 ms at
#: 100k (0.995 and 0.957; the 100k are the 17k real ones and more drawn from their
#: Gaussian), and is built (concurrently) in 3 s and 30 s. At 10k an exact scan costs ~4.5 ms and loses
#: nothing; above, the index is faster and loses little. The in-process index answers in
#: 0.6 ms and 1.9 ms: faster still, but each web process then holds every vector.
HNSW_MIN_ROWS = 10_000
#: HNSW search breadth: at least this many candidates, and 4 per result asked for.
HNSW_EF_MIN = 100
HNSW_INDEX = "article_vectors_hnsw"
#: maintenance_work_mem while the HNSW index is built (PostgreSQL's default is 64 MB).
HNSW_BUILD_MEMORY = "1GB"
#: Rows per batch when the vector column is filled from the stored blobs.
VECTOR_BATCH = 2000
#: Connections per store handle (per process), at most (``ENGFEED_DB_POOL``).
DEFAULT_POOL = 20
#: Seconds a thread waits for a free pooled connection before the call fails.
POOL_WAIT = 30.0
#: Seconds a connection attempt may take before the store reports the server unreachable.
CONNECT_TIMEOUT = 10
#: ts_rank weights for {D, C, B, A}: body 0.2, (unused) 0, excerpt 0.4, title 1.
_RANK_WEIGHTS = "{0.2,0,0.4,1}"
#: ts_rank's normalisation 32: rank / (rank + 1), so each term's share saturates below 1
#: before its IDF weighs it, as BM25's term frequency does. Chosen for agreement with SQLite's
#: BM25 on the relevance set (bench/backends.py; hybrid top-10 overlap: 0 -> 0.930,
#: 1 (1 + log length) -> 0.898, 2 (length) -> 0.864, 8 -> 0.893, 32 -> 0.941).
_RANK_NORM = 32
#: FTS5 expression of engfeed.query.fts_match: quoted terms joined by AND or OR.
_TERM = re.compile(r'"((?:[^"]|"")*)"')


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and ``db status``. Read as text, never
    parsed as a URL: a password may hold "#", "?", "/" or "[", which a URL parser splits on
    (leaving the password in what it calls the host) or refuses. Everything between "://" and
    the last "@" is the user spec; a ``password=`` parameter is hidden too."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userspec, _, host = rest.rpartition("@")
        user, colon, _password = userspec.partition(":")
        rest = f"{user}:***@{host}" if colon else rest
    return _PASSWORD_PARAM.sub(r"\1***", scheme + sep + rest)


_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&]*", re.I)


@lru_cache(maxsize=1024)
def psycopg_sql(sql: str) -> str:
    """``?`` parameters to ``%s`` and literal ``%`` to ``%%``, outside quoted strings."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def match_terms(match: str) -> list[str]:
    """The quoted terms of an FTS5 expression from :func:`engfeed.query.fts_match`, each as
    ``websearch_to_tsquery`` text: one quoted phrase (a compound like ``ml-kem`` stays one).
    Anything outside the quotes is dropped: user text reaches the server only inside them."""
    terms = [t.replace('""', '"').replace('"', " ").strip() for t in _TERM.findall(match)]
    return [f'"{t}"' for t in terms if t]


def websearch_text(match: str) -> tuple[str, bool]:
    """The whole expression as ``websearch_to_tsquery`` text (:func:`match_terms` joined by
    ``or`` when the expression used OR, else by spaces: all must occur), and whether it
    was an OR expression."""
    either = " OR " in _TERM.sub("", match)
    return (" or " if either else " ").join(match_terms(match)), either


def _storable(parameters: Sequence[Any]) -> list[Any]:
    """The parameters, with NUL characters dropped from texts: PostgreSQL text cannot hold
    NUL (SQLite can, and every page strips control characters when it shows them), and a feed
    that carries one must not fail to store."""
    return [p.replace("\x00", "") if isinstance(p, str) and "\x00" in p else p for p in parameters]


@contextmanager
def _lost_connection() -> Iterator[None]:
    """A server that went away (restarted, unreachable, refusing connections for now) is
    :class:`DatabaseUnavailable`: worth retrying. Another "operational" error, such as a
    value over a limit of the server's (SQLSTATE 54000, "index row size exceeds"), is a
    :class:`StoreError`: retrying cannot help. SQL errors stay what they are (bugs)."""
    try:
        yield
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.InterfaceError) or (
            isinstance(exc, psycopg.OperationalError) and _is_outage(getattr(exc, "sqlstate", None))
        ):
            raise DatabaseUnavailable(f"the database did not answer: {_first_line(exc)}") from exc
        if isinstance(exc, psycopg.OperationalError) and not isinstance(
            exc, psycopg.errors.QueryCanceled | psycopg.errors.DeadlockDetected
        ):
            raise StoreError(f"the database refused it: {_first_line(exc)}") from exc
        raise


def _is_outage(sqlstate: str | None) -> bool:
    """No SQLSTATE (the client lost the connection), class 08 (connection exceptions),
    57P01-57P05 (shutting down, crashed, not yet accepting, database dropped, idle session
    timed out) or 53300 (too many connections)."""
    return sqlstate is None or sqlstate.startswith(("08", "57P")) or sqlstate == "53300"


class PgConnection:
    """A psycopg connection that runs the store's ``?``-parameter SQL (see module doc)."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        #: Returns ``raw`` to its pool, once (None for a connection outside the pool).
        self.give_back: weakref.finalize[Any, Any] | None = None

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        with _lost_connection():
            if not parameters:
                return self.raw.execute(sql)  # as written: no parameters to convert, "%" stays "%"
            return self.raw.execute(psycopg_sql(sql), _storable(parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        with _lost_connection():
            cur = self.raw.cursor()
            cur.executemany(psycopg_sql(sql), [_storable(p) for p in parameters])
            return cur

    def close(self) -> None:
        self.raw.close()


class PostgresStore(Store):
    """A store in a PostgreSQL database (the URL names server, database and credentials)."""

    backend = "postgresql"

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        """Connect, check the schema and migrate (``migrate=False``: leave it as it is).

        Raises :class:`StoreError` (with the URL, password hidden) when psycopg is missing,
        the server cannot be reached, or a newer engfeed wrote the schema; in the last case
        nothing is written."""
        super().__init__(url)
        self.url = str(url)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._guard = threading.Lock()
        self._schedule: PgConnection | None = None
        self._df_cache: dict[str, tuple[int, int]] = {}  # term -> (articles then, df)
        self._vector_search: bool | None = None
        self._hnsw: int | None = None  # the dimension of the HNSW index, once there is one
        self._hnsw_checked = float("-inf")
        try:
            probe = self._connect()  # the server's own error, at once, if it cannot be reached
            try:
                self._check_schema_version(probe)
            finally:
                probe.close()
            if migrate:
                self.migrate()
        except StoreError:
            self.close_all()
            raise
        except Exception as exc:
            self.close_all()
            raise StoreError(f"cannot open store {redact_url(self.url)}: {_first_line(exc)}") from exc

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r})"

    @property
    def location_shown(self) -> str:
        return redact_url(self.url)

    def after_bulk_load(self, progress: Callable[[str, int, int], None] | None = None) -> None:
        """Move each identity counter past the largest id copied in, refresh statistics, and
        make the copied vectors searchable here (their half-precision copies, and the HNSW
        index on a big store), so the first search after a copy does not do it."""
        with self.transaction() as tx:
            for table in ("users", "sources", "articles", "mute_rules"):
                tx.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
        self.conn.execute("ANALYZE")
        if self.vector_search:
            self.prepare_vectors(progress)

    def prepare_vectors(self, progress: Callable[[str, int, int], None] | None = None) -> None:
        """Fill the searchable copies of the stored vectors (of their most common size) and
        build the HNSW index if the store is big enough: after a copy or an upgrade."""
        row = self.conn.execute(
            "SELECT octet_length(vec) FROM embeddings GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            dim = int(row[0]) // 2  # float16
            self.sync_vectors(dim, progress=progress)
            self.build_vector_index(dim)

    # -- connections -------------------------------------------------------------------
    @property
    def conn(self) -> PgConnection:
        """This thread's connection, taken from the pool on first use and given back when
        the thread ends (or at :meth:`close`). Web servers run store calls on worker threads
        that come and go; without the give-back each new thread would open a connection and
        the server would run out of them."""
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.raw.closed:
            pool = self._get_pool()
            try:
                raw = pool.getconn(timeout=POOL_WAIT)
            except Exception as exc:
                raise DatabaseUnavailable(
                    f"no database connection free within {POOL_WAIT:g} s (pool of {pool.max_size}; set"
                    f" ENGFEED_DB_POOL): {_first_line(exc)}"
                ) from exc
            conn = PgConnection(raw)
            # Given back once: at close(), or when the wrapper goes (its thread ended, and
            # thread-local data goes with the thread; or this handle went).
            conn.give_back = weakref.finalize(conn, self._give_back, pool, raw)
            self._local.conn = conn
        return conn

    def _get_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        with self._guard:
            if self._pool is None:
                import psycopg_pool

                self._pool = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=0,
                    max_size=_pool_size(),
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                    # a connection the server dropped (a restart) is replaced, not handed out
                    check=psycopg_pool.ConnectionPool.check_connection,
                    open=True,
                    name="engfeed",
                )
                # The pool's threads keep it alive: close it when this handle goes.
                weakref.finalize(self, _close_pool, self._pool)
            return self._pool

    @staticmethod
    def _give_back(pool: psycopg_pool.ConnectionPool[Any], raw: psycopg.Connection[Any]) -> None:
        with contextlib.suppress(Exception):  # the pool may be closed (shutdown) or the conn broken
            if not raw.closed:
                pool.putconn(raw)

    def _connect(self) -> PgConnection:
        """A connection of its own, outside the pool (the schedule's lock, the first check)."""
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL stores need the psycopg package: pip install 'engfeed[postgres]'"
            ) from exc
        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open store {redact_url(self.url)}: {_first_line(exc)}") from exc
        return PgConnection(raw)

    def release(self) -> None:
        self.close()

    # -- concept search in the database (pgvector) ---------------------------------------
    @property
    def vector_search(self) -> bool:
        """Whether concept search can run here: the server has pgvector (migration 0003 made
        ``article_vectors``). Checked once per handle."""
        if self._vector_search is None:
            self._vector_search = self.has_table("article_vectors")
        return self._vector_search

    def sync_vectors(self, dim: int, *, progress: Callable[[str, int, int], None] | None = None) -> int:
        """Fill the half-precision copies from the stored float16 blobs where they are empty
        (new, re-embedded or copied vectors; triggers on ``embeddings`` empty them), in
        batches. Returns how many were filled. Cheap when none is missing (one lookup in a
        partial index)."""
        if (indexed := self._hnsw_dim()) is not None and indexed != dim:  # another model's size
            log.info("dropping the HNSW index of %d-dimension vectors (now %d)", indexed, dim)
            self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {HNSW_INDEX}")
            self._hnsw = None
        done = 0
        total = 0
        if progress is not None:
            missing = self.conn.execute(
                "SELECT count(*) FROM article_vectors v JOIN embeddings e USING (article_id)"
                " WHERE v.embedding IS NULL AND octet_length(e.vec) = ?",
                (2 * dim,),
            )
            total = int(missing.fetchone()[0])
        while True:
            rows = self.conn.execute(
                "SELECT v.article_id, e.vec FROM article_vectors v JOIN embeddings e USING (article_id)"
                " WHERE v.embedding IS NULL AND octet_length(e.vec) = ? ORDER BY v.article_id LIMIT ?",
                (2 * dim, VECTOR_BATCH),  # vectors of another size (another model) stay empty
            ).fetchall()
            if not rows:
                break
            blobs = [(int(aid), bytes(vec)) for aid, vec in rows]
            values = [
                (np.frombuffer(blob, dtype=np.float16).astype(np.float32).tolist(), aid, blob)
                for aid, blob in blobs
            ]
            with self.transaction() as tx:  # only if the vector is still the one read above
                tx.executemany(
                    "UPDATE article_vectors v SET embedding = ?::real[]::halfvec FROM embeddings e"
                    " WHERE v.article_id = ? AND e.article_id = v.article_id AND e.vec = ?",
                    values,
                )
            done += len(values)
            if progress is not None:
                progress("vectors", min(done, total), total)
            if len(rows) < VECTOR_BATCH:
                break
        return done

    def build_vector_index(self, dim: int) -> bool:
        """Make the HNSW index once the store holds ``HNSW_MIN_ROWS`` vectors (~30 s at 100k
        on two cores: done by indexing, a worker's job or ``db copy``, never by a page).
        True when it exists afterwards."""
        if self._hnsw_dim(refresh=True) is not None:
            return True
        count = int(self.conn.execute("SELECT count(embedding) FROM article_vectors").fetchone()[0])
        if count < HNSW_MIN_ROWS:
            return False
        log.info("building the HNSW index of %d vectors (once)", count)
        started = time.monotonic()
        # The graph must fit in maintenance_work_mem or the build slows down threefold
        # (100k vectors, not concurrently: 79 s with the default 64 MB, 23 s with room). A cap, not an
        # allocation, and for this session only.
        # CONCURRENTLY: other processes keep writing vectors meanwhile (a plain build would
        # stop every writer for its duration). A build that died half-way (a killed worker)
        # left an invalid index behind: it is dropped first and built again.
        self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {HNSW_INDEX}")
        with self.transaction() as tx:  # an earlier model's copies of another size: unsearchable now
            tx.execute(
                "UPDATE article_vectors SET embedding = NULL WHERE vector_dims(embedding) <> ?", (int(dim),)
            )
        self.conn.execute("SELECT set_config('maintenance_work_mem', ?, false)", (HNSW_BUILD_MEMORY,))
        try:
            self.conn.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {HNSW_INDEX} ON article_vectors"
                f" USING hnsw ((embedding::halfvec({int(dim)})) halfvec_cosine_ops)"
            )
        finally:
            self.conn.execute("RESET maintenance_work_mem")
        self.conn.execute("ANALYZE article_vectors")  # the planner must know the table is big
        log.info("HNSW index built in %.1f s", time.monotonic() - started)
        return self._hnsw_dim(refresh=True) is not None

    def vector_index_dim(self) -> int | None:
        """The dimension of the usable HNSW index, or None when there is none (looked up now)."""
        return self._hnsw_dim(refresh=True)

    def _hnsw_dim(self, *, refresh: bool = False) -> int | None:
        """The dimension of the HNSW index when there is one (looked up at most once a
        minute: another process may build it meanwhile)."""
        now = time.monotonic()
        if refresh or now - self._hnsw_checked > 60:
            row = self.conn.execute(
                "SELECT substring(pg_get_indexdef(i.indexrelid) from 'halfvec\\((\\d+)\\)')"
                " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = ? AND c.relnamespace = current_schema()::regnamespace"
                " AND i.indisvalid",  # a build that died half-way leaves an invalid one
                (HNSW_INDEX,),
            ).fetchone()
            self._hnsw = int(row[0]) if row is not None and row[0] else None
            self._hnsw_checked = now
        return self._hnsw

    def vector_ids(self, model: str) -> tuple[list[int], list[int]]:
        """(article ids, publish times) of the searchable vectors of ``model``, in id order."""
        rows = self.conn.execute(
            "SELECT v.article_id, a.published FROM article_vectors v JOIN articles a ON a.id = v.article_id"
            " WHERE v.model = ? AND v.embedding IS NOT NULL ORDER BY v.article_id",
            (model,),
        ).fetchall()
        return [int(r[0]) for r in rows], [int(r[1]) for r in rows]

    def nearest(
        self, model: str, query: Sequence[float], k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` articles (of ``ids``, or of all) whose vectors are nearest ``query`` by
        cosine, with their cosine similarity, best first. Among ``ids``, or all of a small
        store: exact. All of a big one: through the HNSW index (``ef_search`` at least
        ``HNSW_EF_MIN`` and 4 per result, so recall stays high)."""
        # The distance is computed once per row and sorted on by its alias: writing it in
        # the select list and again in ORDER BY computes it twice (17k vectors: 7.2 against
        # 4.1 ms here). Similarity is 1 - distance.
        q = _vector_literal(query)
        dim: int | None = None
        rows: list[Any] = []
        if ids is not None:
            rows = self.conn.execute(
                "SELECT article_id, embedding <=> ?::halfvec AS d FROM article_vectors"
                " WHERE model = ? AND embedding IS NOT NULL AND article_id = ANY(?)"
                " ORDER BY d, article_id LIMIT ?",
                (q, model, list(ids), k),
            ).fetchall()
        elif (dim := self._hnsw_dim()) is not None and len(query) == dim:
            cast = f"halfvec({dim})"
            ef = str(min(1000, max(HNSW_EF_MIN, 4 * k)))
            self.conn.execute("SELECT set_config('hnsw.ef_search', ?, false)", (ef,))  # this session's
            rows = self.conn.execute(
                f"SELECT article_id, embedding::{cast} <=> ?::{cast} AS d FROM article_vectors"
                f" WHERE model = ? AND embedding IS NOT NULL ORDER BY d LIMIT ?",
                (q, model, k),
            ).fetchall()
        if ids is None and (dim is None or len(query) != dim or len(rows) < k):
            # Exact: a small store, or the index came up short (it filters by model after
            # its search: mid-way through a switch to another model of the same size).
            rows = self.conn.execute(
                "SELECT article_id, embedding <=> ?::halfvec AS d FROM article_vectors"
                " WHERE model = ? AND embedding IS NOT NULL ORDER BY d, article_id LIMIT ?",
                (q, model, k),
            ).fetchall()
        return [(int(r[0]), 1.0 - float(r[1])) for r in rows]

    def similarity(self, model: str, query: Sequence[float], ids: Sequence[int]) -> dict[int, float]:
        """Cosine similarity of ``query`` with the vectors of these articles (those that have one)."""
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT article_id, 1 - (embedding <=> ?::halfvec) FROM article_vectors"
            " WHERE model = ? AND embedding IS NOT NULL AND article_id = ANY(?)",
            (_vector_literal(query), model, list(ids)),
        ).fetchall()
        return {int(r[0]): float(r[1]) for r in rows}

    def pool_stats(self) -> dict[str, int]:
        """The connection pool's counters (psycopg_pool's: ``pool_size``, ``pool_available``,
        ``requests_waiting``, ...); empty before the first use."""
        pool = self._pool
        return dict(pool.get_stats()) if pool is not None else {}

    def close(self) -> None:
        """Give this thread's connection back to the pool."""
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            if conn.give_back is not None:
                conn.give_back()  # a finalizer runs once: never given back twice

    def claim_schedule(self) -> bool:
        """A session advisory lock on a connection of its own, held while this handle lives;
        the server drops it when the connection does (a killed process, a lost machine, a
        server restart). Asked again, it checks that connection: after a restart the lock is
        claimed anew, unless another process took it meanwhile."""
        if self._schedule is not None:
            try:
                self._schedule.execute("SELECT 1").fetchone()
                return True
            except Exception:  # the connection, and the lock with it, is gone
                with contextlib.suppress(Exception):
                    self._schedule.close()
                self._schedule = None
        conn = self._connect()
        if conn.execute("SELECT pg_try_advisory_lock(?)", (SCHEDULE_LOCK,)).fetchone()[0]:
            self._schedule = conn
            return True
        conn.close()
        return False

    def close_all(self) -> None:
        """Close the pool and the schedule's connection (at shutdown; the store stays usable:
        the next use opens a new pool)."""
        self.close()  # the pool closes the connections it holds, not the ones lent out
        schedule, self._schedule = self._schedule, None
        if schedule is not None:
            schedule.close()
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._write_lock:
            conn = self.conn
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- migrations --------------------------------------------------------------------
    def _applied_version(self, conn: Connection) -> int:
        has_table = conn.execute("SELECT to_regclass(?)", (SCHEMA_VERSION_TABLE,)).fetchone()[0]
        if has_table is None:
            return 0
        found = conn.execute(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE}").fetchone()
        return int(found[0]) if found and found[0] is not None else 0

    def _check_schema_version(self, conn: Connection) -> None:
        found, known = self._applied_version(conn), _latest()
        if found > known:
            raise StoreError(
                f"this store was written by a newer engfeed (schema {found} > {known}); upgrade engfeed"
                f" to open {redact_url(self.url)}"
            )

    def migrate(self) -> int:
        with self.transaction() as tx:  # under the write lock: one process migrates
            tx.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (version INTEGER PRIMARY KEY)")
            done = {int(row[0]) for row in tx.execute(f"SELECT version FROM {SCHEMA_VERSION_TABLE}")}
            version = max(done, default=0)
            ran: list[int] = []
            for number, sql in migrations(self.backend):
                if number in done:
                    continue
                tx.execute(sql)
                tx.execute(f"INSERT INTO {SCHEMA_VERSION_TABLE}(version) VALUES (?)", (number,))
                version = number
                ran.append(number)
        if VECTOR_TABLE_MIGRATION in ran and self.vector_search:
            self.prepare_vectors()  # the moved copies, filled here once, not by a first search
        return version

    def apply_addon_schema(self, table: str, sql: str) -> bool:
        """Run an add-on's schema script (the job queue's) unless ``table`` exists, under the
        write lock, so processes starting together apply it once. True when it ran."""
        with self.transaction() as tx:
            if tx.execute("SELECT to_regclass(?)", (table,)).fetchone()[0] is not None:
                return False
            tx.execute(sql)
        return True

    def has_table(self, table: str) -> bool:
        return self.conn.execute("SELECT to_regclass(?)", (table,)).fetchone()[0] is not None

    def has_job_queue(self) -> bool:
        return self.has_table("procrastinate_jobs")

    def queue_state(self, live_s: float = 60.0) -> dict[str, int] | None:
        """Jobs per status on procrastinate's queue, and the workers that beat in the last
        ``live_s`` seconds; None when no worker ever set the queue up."""
        if not self.has_job_queue():
            return None
        state = {"todo": 0, "doing": 0, "failed": 0}
        for status, count in self.conn.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs"
            " WHERE status IN ('todo', 'doing', 'failed') GROUP BY status"
        ):
            state[str(status)] = int(count)
        row = self.conn.execute(
            "SELECT count(*) FROM procrastinate_workers"
            " WHERE last_heartbeat > now() - make_interval(secs => ?)",
            (live_s,),
        ).fetchone()
        state["workers"] = int(row[0])
        return state

    def schema_status(self) -> SchemaStatus:
        return SchemaStatus(self.backend, redact_url(self.url), self._applied_version(self.conn), _latest())

    def change_marker(self) -> tuple[int, int]:
        row = self.conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        return int(row[0]), 0

    # -- full text (tsvector) ------------------------------------------------------------
    def _fts_ranked_sql(
        self, match: str, flt: ArticleFilter, *, limit: int, window: int | None
    ) -> list[tuple[int, float]]:
        """BM25-like ranking over the weighted tsvector: per query term, ``ts_rank`` (its
        occurrences weighted by field, saturating: see ``_RANK_NORM``) times the
        term's BM25 inverse document frequency, summed. ``ts_rank`` alone has no IDF,
        so a common word weighed as much as a rare one (measured on the relevance set: BM25
        nDCG@10 0.109 without it, against FTS5's 0.220). With ``window`` and no filter only
        the newest ``window`` matches by id are ranked, as on SQLite."""
        text, either = websearch_text(match)
        terms = match_terms(match)
        if not text:
            return []
        try:
            total = self._article_total()
            df = self._document_frequencies(terms, total)
            idf = {t: math.log(1.0 + (total - n + 0.5) / (n + 0.5)) for t, n in df.items()}
            where, params = self.filter_sql(flt, mutes=False)
            one = f"ts_rank('{_RANK_WEIGHTS}', f.fts, websearch_to_tsquery('english', ?), {_RANK_NORM})"
            rank = " + ".join(f"? * {one}" for _ in terms)
            rank_args: list[object] = [x for term in terms for x in (idf[term], term)]
            query = "websearch_to_tsquery('english', ?)"
            if window is not None and where == NO_FILTER:
                # Only the newest ``window`` matches are ranked. How to find them depends on how
                # many there are: a rare term's few matches come fastest from the GIN index
                # (MATERIALIZED keeps the planner on that path), a common OR's from walking ids
                # backwards until ``window`` rows matched (at 100k articles: 4 ms against 51
                # for 8k matches; 2 against 80 for 98k). The walk tests about window x N / M
                # rows for M matches, the index reads M: the walk wins past M^2 > window x N.
                found = min(total, sum(df.values())) if either else min(df.values(), default=0)
                newest = f"SELECT id FROM article_fts WHERE fts @@ {query} ORDER BY id DESC LIMIT ?"
                if found * found <= max(window, limit) * max(1, total):
                    newest = (
                        f"WITH m AS MATERIALIZED (SELECT id FROM article_fts WHERE fts @@ {query})"
                        " SELECT id FROM m ORDER BY id DESC LIMIT ?"
                    )
                sql = (
                    f"SELECT f.id, {rank} AS score FROM article_fts f JOIN ({newest}) w ON w.id = f.id"
                    " ORDER BY score DESC, f.id DESC LIMIT ?"
                )
                args: list[object] = [*rank_args, text, max(window, limit), limit]
            else:
                sql = (
                    f"SELECT a.id, {rank} AS score FROM article_fts f JOIN articles a ON a.id = f.id"
                    f" WHERE f.fts @@ {query} AND {where} ORDER BY score DESC, a.id DESC LIMIT ?"
                )
                args = [*rank_args, text, *params, limit]
            rows = self.conn.execute(sql, args).fetchall()
        except DatabaseUnavailable:
            raise  # an outage, not a query the engine could not run
        except Exception as exc:
            if _is_cancel(exc):
                raise
            raise QueryError(f"full-text query failed: {_first_line(exc)}") from exc
        return [(int(r[0]), float(r[1])) for r in rows]

    def _document_frequencies(self, terms: Sequence[str], total: int) -> dict[str, int]:
        """How many articles each term occurs in (for BM25's IDF, ``ln(1 + (N - df + 0.5) /
        (df + 0.5))``, and the choice of plan). Counted on the GIN index and cached until the
        number of articles moves by 1%."""
        out: dict[str, int] = {}
        for term in terms:
            cached = self._df_cache.get(term)
            if cached is None or abs(cached[0] - total) > total // 100:
                cached = self._df_cache[term] = (total, self._count_term(term, total))
                if len(self._df_cache) > 4096:
                    self._df_cache.pop(next(iter(self._df_cache)))
            out[term] = cached[1]
        return out

    def _count_term(self, term: str, total: int) -> int:
        """In how many articles ``term`` occurs. A word among the column's most common
        lexemes (the statistics ANALYZE keeps) is estimated from its frequency there: an
        exact count of a word in most articles costs a pass over most of the index (50 ms at
        100k articles), and IDF needs no precision for it. Any other term is counted; it is
        rare enough to be cheap."""
        row = self.conn.execute(
            "SELECT s.freq FROM pg_stats p,"
            " unnest(p.most_common_elems::text::text[], p.most_common_elem_freqs) AS s(lexeme, freq),"
            " unnest(tsvector_to_array(to_tsvector('english', ?))) AS t(lexeme)"
            " WHERE p.tablename = 'article_fts' AND p.attname = 'fts' AND s.lexeme = t.lexeme"
            " AND (SELECT count(*) FROM unnest(tsvector_to_array(to_tsvector('english', ?)))) = 1",
            (term.strip('"'), term.strip('"')),
        ).fetchone()
        if row is not None and row[0] is not None:
            return round(float(row[0]) * total)
        counted = self.conn.execute(
            "SELECT count(*) FROM article_fts WHERE fts @@ websearch_to_tsquery('english', ?)", (term,)
        ).fetchone()
        return int(counted[0])

    def _article_total(self) -> int:
        """The number of articles (the planner's estimate once past 10k: exact counts of a big
        table cost a scan, and IDF needs no precision)."""
        row = self.conn.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = 'articles'::regclass"
        ).fetchone()
        estimate = int(row[0]) if row and row[0] is not None else -1
        if estimate >= 10_000:
            return estimate
        return int(self.conn.execute("SELECT count(*) FROM articles").fetchone()[0])

    def fts_search_bounded(
        self, match: str, flt: ArticleFilter, *, limit: int, max_steps: int, window: int | None = None
    ) -> list[tuple[int, float]] | None:
        """Bounded by time on the server (``statement_timeout``): ``max_steps`` SQLite steps
        cost about 0.1 ms per 1000 there, so the same budget is given in milliseconds, at
        least 50. Unlike SQLite's step count, a time budget may answer a borderline query
        on one run and not the next."""
        budget_ms = max(50, max_steps // 10_000)
        conn = self.conn
        conn.execute(f"SET statement_timeout = {int(budget_ms)}")
        try:
            return self.fts_search(match, flt, limit=limit, window=window)
        except Exception as exc:
            if _is_cancel(exc):
                return None
            raise
        finally:
            conn.execute("SET statement_timeout = 0")


def _is_cancel(exc: BaseException) -> bool:
    return type(exc).__name__ == "QueryCanceled"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _vector_literal(values: Sequence[float]) -> str:
    """A query vector as pgvector's text form, ``[0.1,0.2,...]``: sent as an untyped literal
    and cast once (``?::halfvec``). A ``real[]`` parameter cast to halfvec in the query
    costs ~30 % more per exact scan (17k vectors: 9.5 against 7.2 ms here)."""
    finite = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return "[" + ",".join(repr(float(x)) for x in finite) + "]"  # pgvector refuses NaN and inf


#: The migration that moved the vector copies into ``article_vectors``.
VECTOR_TABLE_MIGRATION = 3


def _latest() -> int:
    return max((number for number, _ in migrations(PostgresStore.backend)), default=0)


def _pool_size() -> int:
    raw = os.environ.get("ENGFEED_DB_POOL", "").strip()
    try:
        return max(2, min(200, int(raw))) if raw else DEFAULT_POOL
    except ValueError:
        return DEFAULT_POOL


def _close_pool(pool: psycopg_pool.ConnectionPool[Any]) -> None:
    with contextlib.suppress(Exception):
        pool.close(timeout=1.0)
