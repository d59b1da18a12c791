"""SQLite storage: the only package that speaks SQL.

Articles, sources, vectors, angles and reading state live here; newer domains are parts of
their own, reached from the store: :attr:`Store.pages` (article pages and robots.txt),
:attr:`Store.summaries`, :attr:`Store.mutes` (mute rules), :attr:`Store.digests` (digest
sends) and :attr:`Store.feedback` (the reader's verdicts on angles). One file, WAL mode,
numbered migrations (``migrations/NNNN_*.sql``), an FTS5 index kept in step with
``articles`` by triggers. Each thread gets its own connection so the web server's background
refresh can write while pages read. Writes for one source happen in one ``transaction()``:
a crash mid-refresh loses nothing committed and leaves no half source.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from engfeed.errors import EngfeedError, QueryError, StoreError
from engfeed.extract import is_teaser
from engfeed.models import AngleMatch, Article, ArticleFilter, Source
from engfeed.store.digests import DigestsPart
from engfeed.store.feedback import FeedbackPart
from engfeed.store.mutes import MutesPart, muted_sql
from engfeed.store.pages import PagesPart
from engfeed.store.sql import cursors_in, select_in
from engfeed.store.summaries import SummariesPart
from engfeed.text import title_key

SCHEMA_VERSION_TABLE = "schema_migrations"
__all__ = ["LOCAL_USER", "ArticleFilter", "Store", "UpsertResult"]  # ArticleFilter: from engfeed.models

#: The one implicit reader until there are accounts (migration 0006 creates it).
LOCAL_USER = 1


@dataclass(slots=True)
class UpsertResult:
    """What one source's write did, for the refresh summary and post-processing."""

    new: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: int = 0


#: Seconds between the publish times of a post and its mirror (see ``upsert_articles``):
#: a re-post under a fixed slug moves by minutes.
MIRROR_WINDOW = 3600
#: The meta key of the counter that numbers "passages pending" marks (see save_document_vectors).
_PASSAGE_TOKEN = "passages.token"


def _mirrored(conn: sqlite3.Connection, art: Article) -> int | None:
    """The stored post of the same source that ``art`` (not stored under its uid) copies."""
    if art.date_estimated or not art.source or not art.title.strip():
        return None  # estimated dates are fetch times: unrelated posts can share them
    when = to_ts(art.published)
    rows = conn.execute(
        "SELECT id, title FROM articles WHERE source_name = ? COLLATE NOCASE AND published BETWEEN ? AND ?"
        " AND date_estimated = 0",
        (art.source, when - MIRROR_WINDOW, when + MIRROR_WINDOW),
    ).fetchall()
    title = title_key(art.title)
    return next((int(r[0]) for r in rows if title_key(str(r[1])) == title), None)


def to_ts(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def from_ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _content_hash(a: Article) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for part in (a.url, a.title, a.author, "\x1f".join(a.tags), a.summary_html, a.content_html, a.excerpt):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    h.update(str(to_ts(a.updated) if a.updated else "").encode())
    return h.hexdigest()


ARTICLE_COLUMNS = (
    "a.id, a.uid, a.source_name, a.url, a.guid, a.title, a.author, a.tags, a.published, a.updated,"
    " a.date_estimated, a.first_seen, a.excerpt, a.text_source"
)
FULL_COLUMNS = (
    ARTICLE_COLUMNS + ", a.summary_html, a.content_html, a.body,"
    " (SELECT p.html FROM article_pages p WHERE p.article_id = a.id AND a.text_source = 'page') AS page_html"
)


#: Extra full-text matches ranked when mute rules may drop some (see ``Store.fts_search``).
MUTED_SLACK = 20


class Store:
    """A handle on one SQLite file. Cheap to create; connections open lazily per thread."""

    def __init__(self, path: Path | str) -> None:
        """Open (creating it and its folder if needed) and migrate the store at ``path``.

        Raises :class:`StoreError`, naming the path, when it cannot be a store (its folder is
        a file, it is a device or a folder, it is not writable, it is not SQLite) or when a
        newer engfeed wrote it; in the last case nothing at all is written to it.
        """
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self.pages = PagesPart(self)
        self.summaries = SummariesPart(self)
        self.mutes = MutesPart(self)
        self.digests = DigestsPart(self)
        self.feedback = FeedbackPart(self)
        if str(self.path) != ":memory:":
            self._check_path()
            self._check_schema_version()
        try:
            self.migrate()
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

    def _check_schema_version(self) -> None:
        """Refuse a store written by a newer engfeed, reading it through a read-only connection."""
        if not self.path.is_file():
            return
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.DatabaseError:
            return  # the normal open reports it
        try:
            has_table = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SCHEMA_VERSION_TABLE,)
            ).fetchone()
            found = (
                conn.execute(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE}").fetchone()
                if has_table
                else None
            )
        except sqlite3.DatabaseError:
            return
        finally:
            conn.close()
        known = max((number for number, _ in _migrations()), default=0)
        if found and found[0] is not None and int(found[0]) > known:
            newer = int(found[0])
            raise StoreError(
                f"this store was written by a newer engfeed (schema {newer} > {known}); upgrade engfeed"
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

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: commit on success, roll back on any exception."""
        with self._write_lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- migrations --------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending numbered migrations; returns the schema version reached."""
        conn = self.conn
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} (version INTEGER PRIMARY KEY)")
        done = {row[0] for row in conn.execute(f"SELECT version FROM {SCHEMA_VERSION_TABLE}")}
        version = max(done, default=0)
        for number, sql in _migrations():
            if number in done:
                continue
            with self.transaction() as tx:
                for statement in _split_sql(sql):
                    tx.execute(statement)
                tx.execute(f"INSERT INTO {SCHEMA_VERSION_TABLE}(version) VALUES (?)", (number,))
            version = number
        return version

    # -- sources -----------------------------------------------------------------------
    def sources(self) -> list[Source]:
        rows = self.conn.execute(
            "SELECT s.*, (SELECT count(*) FROM articles a WHERE a.source_id = s.id) AS n"
            " FROM sources s ORDER BY s.name COLLATE NOCASE"
        )
        return [_source(row) for row in _dicts(rows)]

    def source(self, name_or_url: str) -> Source | None:
        row = self.conn.execute(
            "SELECT s.*, (SELECT count(*) FROM articles a WHERE a.source_id = s.id) AS n FROM sources s"
            " WHERE s.name = ? COLLATE NOCASE OR s.url = ?",
            (name_or_url, name_or_url),
        )
        found = _dicts(row)
        return _source(found[0]) if found else None

    def add_source(self, name: str, url: str, site_url: str = "") -> Source:
        with self.transaction() as tx:
            clash = tx.execute(
                "SELECT name, url FROM sources WHERE name = ? COLLATE NOCASE OR url = ?", (name, url)
            ).fetchone()
            if clash:
                what = "name" if clash[0].lower() == name.lower() else "feed URL"
                raise EngfeedError(f"a source with this {what} already exists: {clash[0]} ({clash[1]})")
            tx.execute(
                "INSERT INTO sources(name, url, site_url, added) VALUES (?, ?, ?, ?)",
                (name, url, site_url, to_ts(datetime.now(UTC))),
            )
        found = self.source(url)
        assert found is not None
        return found

    def remove_source(self, name_or_url: str) -> Source:
        """Forget a source; its articles stay (the store is the history)."""
        found = self.source(name_or_url)
        if found is None:
            raise EngfeedError(f"no such source: {name_or_url}")
        with self.transaction() as tx:
            tx.execute("DELETE FROM sources WHERE id = ?", (found.id,))
        return found

    def record_fetch(
        self,
        source_id: int,
        *,
        attempt: datetime,
        ok: bool,
        http_status: int | None,
        error: str | None,
        next_due: datetime,
        etag: str | None = None,
        last_modified: str | None = None,
        new_url: str | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Update one source's health after a fetch (inside the caller's transaction if given)."""
        sql = (
            "UPDATE sources SET last_attempt = ?, http_status = ?, error = ?, next_due = ?,"
            " failures = CASE WHEN ? THEN 0 ELSE failures + 1 END,"
            " last_success = CASE WHEN ? THEN ? ELSE last_success END,"
            " etag = CASE WHEN ? THEN ? ELSE etag END,"
            " last_modified = CASE WHEN ? THEN ? ELSE last_modified END"
            " WHERE id = ?"
        )
        ts = to_ts(attempt)
        params = (ts, http_status, error, to_ts(next_due), ok, ok, ts, ok, etag, ok, last_modified, source_id)

        def run(c: sqlite3.Connection) -> None:
            c.execute(sql, params)
            if new_url:
                taken = c.execute("SELECT 1 FROM sources WHERE url = ? AND id != ?", (new_url, source_id))
                if taken.fetchone() is None:
                    c.execute("UPDATE sources SET url = ? WHERE id = ?", (new_url, source_id))

        if conn is not None:
            run(conn)
        else:
            with self.transaction() as tx:
                run(tx)

    # -- articles: writes ----------------------------------------------------------------
    def upsert_articles(
        self, articles: Sequence[Article], *, source_id: int | None, conn: sqlite3.Connection
    ) -> UpsertResult:
        """Insert new articles, update changed ones in place; call inside ``transaction()``.

        The same article reached through another feed or URL variant shares its ``uid`` and is
        stored once, under the source that saw it first. So is a *mirror*: the same post from
        the same source under another host (Cloudflare's feeds also carry each post from a
        staging host, 100 posts in the shared corpus; re-slugged re-posts), recognised by the
        same title and real publish times at most ``MIRROR_WINDOW`` apart. Mirrors count as
        unchanged.
        """
        result = UpsertResult()
        for art in articles:
            digest = _content_hash(art)
            row = conn.execute(
                "SELECT id, content_hash, published, date_estimated, text_source FROM articles WHERE uid = ?",
                (art.uid,),
            ).fetchone()
            kept = _mirrored(conn, art) if row is None else None
            if kept is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO article_aliases(uid, article_id) VALUES (?, ?)", (art.uid, kept)
                )
                result.unchanged += 1
            elif row is None:
                cur = conn.execute(
                    "INSERT INTO articles(uid, source_id, source_name, url, guid, title, author, tags,"
                    " published, updated, date_estimated, first_seen, summary_html, content_html, excerpt,"
                    " body, content_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        art.uid, source_id, art.source, art.url, art.guid, art.title, art.author,
                        json.dumps(list(art.tags)), to_ts(art.published),
                        to_ts(art.updated) if art.updated else None, int(art.date_estimated),
                        to_ts(art.first_seen or datetime.now(UTC)), art.summary_html, art.content_html,
                        art.excerpt, art.text, digest,
                    ),
                )  # fmt: skip
                assert cur.lastrowid is not None
                result.new.append(cur.lastrowid)
            elif row[1] == digest:
                result.unchanged += 1
            else:
                # Keep the first known real date: a feed re-dating an old post must not bump it.
                published, estimated = row[2], bool(row[3])
                if estimated and not art.date_estimated:
                    published, estimated = to_ts(art.published), False
                # Text from the article page stays while the feed still carries only a teaser
                # (and comes back when a feed that had turned to full text turns to teasers again).
                keep_page = row[4] == "page" and is_teaser(art.text)
                body, source = art.text, "feed"
                if not keep_page and is_teaser(art.text):
                    stored = self.pages.stored_text(row[0], conn=conn)
                    if stored and len(stored.split()) > len(art.text.split()):
                        body, source = stored, "page"
                conn.execute(
                    "UPDATE articles SET url=?, guid=?, title=?, author=?, tags=?, published=?, updated=?,"
                    " date_estimated=?, summary_html=?, content_html=?, excerpt=?,"
                    " body=CASE WHEN ? THEN body ELSE ? END,"
                    " text_source=CASE WHEN ? THEN 'page' ELSE ? END,"
                    " content_hash=?, angles_sig=NULL WHERE id=?",
                    (
                        art.url, art.guid, art.title, art.author, json.dumps(list(art.tags)), published,
                        to_ts(art.updated) if art.updated else None, int(estimated), art.summary_html,
                        art.content_html, art.excerpt, keep_page, body, keep_page, source, digest, row[0],
                    ),
                )  # fmt: skip
                conn.execute("DELETE FROM summaries WHERE article_id = ?", (row[0],))  # made from old text
                result.updated.append(row[0])
        return result

    # -- articles: reads -----------------------------------------------------------------
    def filter_sql(
        self, flt: ArticleFilter, alias: str = "a", *, mutes: bool = True
    ) -> tuple[str, list[object]]:
        """``flt`` as a SQL condition on the articles alias ``alias``, with its parameters
        (``"1"`` when it filters nothing). Muted articles are left out unless
        ``flt.include_muted``; the condition is skipped when the reader has no rules."""
        clauses: list[str] = []
        params: list[object] = []
        if flt.state == "saved":
            clauses.append(
                f"EXISTS (SELECT 1 FROM reading_state r WHERE r.article_id = {alias}.id"
                f" AND r.user_id = {LOCAL_USER} AND r.saved = 1)"
            )
        elif flt.state == "unread":
            clauses.append(
                f"NOT EXISTS (SELECT 1 FROM reading_state r WHERE r.article_id = {alias}.id"
                f" AND r.user_id = {LOCAL_USER} AND r.read = 1)"
            )
        if flt.sources:
            marks = ",".join("?" * len(flt.sources))
            clauses.append(f"{alias}.source_name COLLATE NOCASE IN ({marks})")
            params.extend(flt.sources)
        if flt.angle:
            clauses.append(
                f"EXISTS (SELECT 1 FROM article_angles g WHERE g.article_id = {alias}.id"
                " AND g.angle = ? COLLATE NOCASE)"
            )
            params.append(flt.angle)
        if flt.since:
            clauses.append(f"{alias}.published >= ?")
            params.append(to_ts(flt.since))
        if flt.until:
            clauses.append(f"{alias}.published < ?")
            params.append(to_ts(flt.until))
        if mutes and not flt.include_muted and self.mutes.active():
            clauses.append(f"NOT {muted_sql(alias)}")
        return (" AND ".join(clauses) or "1"), params

    def restricts(self, flt: ArticleFilter) -> bool:
        """Whether ``flt`` leaves out any article (search skips filtering when it does not)."""
        return self.filter_sql(flt)[0] != "1"

    def list_articles(
        self, flt: ArticleFilter = ArticleFilter(), *, limit: int = 50, before: tuple[int, int] | None = None
    ) -> list[Article]:
        """Newest first by publish date, keyset-paginated on (published, id)."""
        where, params = self.filter_sql(flt)
        if before is not None:
            where += " AND (a.published, a.id) < (?, ?)"
            params += [before[0], before[1]]
        rows = self.conn.execute(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {where}"
            " ORDER BY a.published DESC, a.id DESC LIMIT ?",
            [*params, max(0, limit)],
        )
        return self._with_angles([_article(r) for r in _dicts(rows)])

    def count_articles(self, flt: ArticleFilter = ArticleFilter()) -> int:
        where, params = self.filter_sql(flt)
        return int(self.conn.execute(f"SELECT count(*) FROM articles a WHERE {where}", params).fetchone()[0])

    def article(self, uid: str) -> Article | None:
        """The article with this id, or the one kept in place of the mirror with this id."""
        rows = _dicts(self.conn.execute(f"SELECT {FULL_COLUMNS} FROM articles a WHERE a.uid = ?", (uid,)))
        if not rows:
            rows = _dicts(
                self.conn.execute(
                    f"SELECT {FULL_COLUMNS} FROM article_aliases m JOIN articles a ON a.id = m.article_id"
                    " WHERE m.uid = ?",
                    (uid,),
                )
            )
        return self._with_angles([_article(rows[0])])[0] if rows else None

    def articles_by_ids(self, ids: Sequence[int], *, full: bool = False) -> dict[int, Article]:
        """Fetch articles by rowid (order not kept: callers rank)."""
        out: dict[int, Article] = {}
        cols = FULL_COLUMNS if full else ARTICLE_COLUMNS
        for rows in cursors_in(self.conn, f"SELECT {cols} FROM articles a WHERE a.id IN ({{ids}})", ids):
            for art in self._with_angles([_article(r) for r in _dicts(rows)]):
                assert art.id is not None
                out[art.id] = art
        return out

    def bodies(self, ids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        """(title, excerpt, body) per rowid, for embedding, labelling and context passages."""
        out: dict[int, tuple[str, str, str]] = {}
        for row in select_in(
            self.conn, "SELECT id, title, excerpt, body FROM articles WHERE id IN ({ids})", ids
        ):
            out[row[0]] = (row[1], row[2], row[3])
        return out

    def all_ids(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT id FROM articles ORDER BY id")]

    def source_counts(self) -> list[tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT source_name, count(*) FROM articles GROUP BY source_name COLLATE NOCASE"
            " ORDER BY count(*) DESC, source_name"
        )
        return [(r[0], r[1]) for r in rows]

    def fts_search(
        self, match: str, flt: ArticleFilter, *, limit: int, window: int | None = None
    ) -> list[tuple[int, float]]:
        """BM25 over title (weight 5), excerpt (2) and body (1), best first, as positive scores.

        FTS5 computes BM25 for every match before ``ORDER BY score LIMIT`` applies, so a
        common term costs in proportion to its matches (~2 us each here: 22 ms for 16k of
        100k articles). With ``window`` (and no filter) only the newest ``window`` matches
        by rowid, i.e. the most recently stored, are scored: FTS5 walks its doclists in
        rowid order and stops there, so the cost is bounded and the answer exact whenever
        there are fewer matches than that. With a filter the answer is always exact.

        The reader's mute rules are not part of the SQL (they would turn off the window and
        make every match pay the rule check): muted matches are dropped afterwards, from a
        ranking over-fetched by ``MUTED_SLACK`` and then by the number dropped.
        """
        if flt.include_muted or not self.mutes.active():
            return self._fts_ranked(match, flt, limit=limit, window=window)
        fetch = limit + MUTED_SLACK
        while True:
            hits = self._fts_ranked(match, flt, limit=fetch, window=window)
            muted = self.mutes.muted_by([aid for aid, _ in hits])
            kept = [(aid, score) for aid, score in hits if aid not in muted]
            if len(kept) >= limit or len(hits) < fetch:
                return kept[:limit]
            fetch = limit + 2 * len(muted) + MUTED_SLACK

    def _fts_ranked(
        self, match: str, flt: ArticleFilter, *, limit: int, window: int | None
    ) -> list[tuple[int, float]]:
        try:
            return self._fts_ranked_sql(match, flt, limit=limit, window=window)
        except sqlite3.OperationalError as exc:  # a malformed expression, or an interrupt
            raise QueryError(f"full-text query failed: {exc}") from exc

    def _fts_ranked_sql(
        self, match: str, flt: ArticleFilter, *, limit: int, window: int | None
    ) -> list[tuple[int, float]]:
        where, params = self.filter_sql(flt, mutes=False)
        if window is not None and where == "1":
            # Ranked inside SQLite: the first step does all the work with the GIL released,
            # and only ``limit`` rows come back to Python.
            sql = (
                "SELECT id, score FROM (SELECT rowid AS id, bm25(articles_fts, 5.0, 2.0, 1.0) AS score"
                " FROM articles_fts WHERE articles_fts MATCH ? ORDER BY rowid DESC LIMIT ?)"
                " ORDER BY score, id DESC LIMIT ?"
            )
            rows = self.conn.execute(sql, [match, max(window, limit), limit]).fetchall()
            return [(r[0], -float(r[1])) for r in rows]
        if where == "1":
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

    def filtered_ids(self, flt: ArticleFilter) -> list[int]:
        where, params = self.filter_sql(flt)
        return [r[0] for r in self.conn.execute(f"SELECT a.id FROM articles a WHERE {where}", params)]

    def published_map(self, ids: Iterable[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for row in select_in(self.conn, "SELECT id, published FROM articles WHERE id IN ({ids})", list(ids)):
            out[row[0]] = row[1]
        return out

    # -- embeddings ----------------------------------------------------------------------
    def ids_missing_vectors(self, model: str) -> list[int]:
        rows = self.conn.execute(
            "SELECT a.id FROM articles a LEFT JOIN embeddings e ON e.article_id = a.id"
            " WHERE e.article_id IS NULL OR e.model != ? ORDER BY a.id",
            (model,),
        )
        return [r[0] for r in rows]

    def save_vectors(self, model: str, items: Iterable[tuple[int, bytes]]) -> None:
        """Store document vectors whose passages are already stored (or that have none)."""
        with self.transaction() as tx:
            tx.executemany(
                "INSERT OR REPLACE INTO embeddings(article_id, model, vec) VALUES (?, ?, ?)",
                ((aid, model, blob) for aid, blob in items),
            )

    def save_document_vectors(self, model: str, items: Iterable[tuple[int, bytes, bool]]) -> None:
        """Store ``(article id, vector, passages to come)``: the first of the two embedding
        passes. Every article loses its old passages here (they belong to its old text or
        model); one whose passages are to come is listed by :meth:`pending_passages`, with a
        fresh token, until :meth:`save_passages` stores the new ones."""
        items = list(items)
        with self.transaction() as tx:
            # Tokens from a counter in meta, taken under the store's write lock: never reused,
            # so a second pass that read an older text never clears a newer mark (save_passages).
            row = tx.execute("SELECT value FROM meta WHERE key = ?", (_PASSAGE_TOKEN,)).fetchone()
            token = int(row[0]) if row is not None else 0
            rows = []
            for aid, blob, pending in items:
                token += 1 if pending else 0
                rows.append((aid, model, blob, token if pending else 0))
            tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (_PASSAGE_TOKEN, str(token)))
            tx.executemany(
                "INSERT OR REPLACE INTO embeddings(article_id, model, vec, passages_pending)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
            tx.executemany("DELETE FROM passages WHERE article_id = ?", [(r[0],) for r in rows])

    def pending_passages(self, model: str) -> dict[int, int]:
        """{article id: token} of the articles with a document vector of ``model`` whose
        passages are still to be embedded (read the token before the text)."""
        rows = self.conn.execute(
            "SELECT article_id, passages_pending FROM embeddings"
            " WHERE model = ? AND passages_pending != 0 ORDER BY article_id",
            (model,),
        )
        return {int(r[0]): int(r[1]) for r in rows}

    def ids_pending_passages(self, model: str) -> list[int]:
        """The article ids of :meth:`pending_passages`, in id order."""
        return list(self.pending_passages(model))

    def load_vectors(self, model: str) -> tuple[list[int], list[bytes]]:
        ids: list[int] = []
        blobs: list[bytes] = []
        for aid, blob in self.conn.execute(
            "SELECT article_id, vec FROM embeddings WHERE model = ? ORDER BY article_id", (model,)
        ):
            ids.append(aid)
            blobs.append(blob)
        return ids, blobs

    def vectors_of(self, model: str, ids: Sequence[int]) -> dict[int, bytes]:
        """The stored vectors of ``model`` for these articles (those that have one)."""
        out: dict[int, bytes] = {}
        sql = "SELECT article_id, vec FROM embeddings WHERE model = ? AND article_id IN ({ids})"
        out.update((int(aid), bytes(blob)) for aid, blob in select_in(self.conn, sql, ids, before=[model]))
        return out

    def vector_count(self, model: str) -> int:
        return int(
            self.conn.execute("SELECT count(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0]
        )

    # -- angles --------------------------------------------------------------------------
    def save_angles(self, labels: Iterable[tuple[int, Sequence[AngleMatch]]], signature: str) -> None:
        """Replace the angles of the given articles and mark them labelled by ``signature``."""
        with self.transaction() as tx:
            for aid, matches in labels:
                tx.execute("UPDATE articles SET angles_sig = ? WHERE id = ?", (signature, aid))
                tx.execute("DELETE FROM article_angles WHERE article_id = ?", (aid,))
                tx.executemany(
                    "INSERT INTO article_angles(article_id, angle, terms, score) VALUES (?, ?, ?, ?)",
                    [(aid, m.name, json.dumps(list(m.terms)), m.score) for m in matches],
                )

    def ids_needing_angles(self, signature: str) -> list[int]:
        rows = self.conn.execute(
            "SELECT id FROM articles WHERE angles_sig IS NULL OR angles_sig != ? ORDER BY id", (signature,)
        )
        return [r[0] for r in rows]

    def angle_counts(self) -> list[tuple[str, int]]:
        rows = self.conn.execute("SELECT angle, count(*) FROM article_angles GROUP BY angle ORDER BY 2 DESC")
        return [(r[0], r[1]) for r in rows]

    def angle_coverage(self) -> tuple[int, int]:
        """(articles with at least one angle, all articles)."""
        row = self.conn.execute(
            "SELECT (SELECT count(DISTINCT article_id) FROM article_angles), (SELECT count(*) FROM articles)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def _with_angles(self, articles: list[Article]) -> list[Article]:
        ids = [a.id for a in articles if a.id is not None]
        if not ids:
            return articles
        found: dict[int, list[AngleMatch]] = {}
        sql = (
            "SELECT article_id, angle, terms, score FROM article_angles WHERE article_id IN ({ids})"
            " ORDER BY rowid"  # the labeller's order: save_angles inserts the first angle first
        )
        for aid, angle, terms, score in select_in(self.conn, sql, ids):
            found.setdefault(aid, []).append(AngleMatch(angle, tuple(json.loads(terms)), score))
        states = self._reading_states(ids)
        out = [_decorate(a, tuple(found.get(a.id or -1, ())), states.get(a.id or -1)) for a in articles]
        if self.mutes.active():
            hidden = self.mutes.muted_by(ids)
            if hidden:
                names = {r.id: r.describe() for r in self.mutes.rules(counted=False)}
                out = [
                    replace(a, muted=True, muted_by=tuple(names[r] for r in hidden[a.id] if r in names))
                    if a.id in hidden
                    else a
                    for a in out
                ]
        return out

    # -- reading state (per user; LOCAL_USER until there are accounts) --------------------
    def _reading_states(self, ids: Sequence[int], user: int = LOCAL_USER) -> dict[int, tuple[object, ...]]:
        out: dict[int, tuple[object, ...]] = {}
        sql = (
            "SELECT article_id, saved, read, note, saved_at, read_at FROM reading_state"
            " WHERE user_id = ? AND article_id IN ({ids})"
        )
        for row in select_in(self.conn, sql, ids, before=[user]):
            out[int(row[0])] = tuple(row[1:])
        return out

    def set_saved(self, ids: Sequence[int], saved: bool, *, when: datetime, user: int = LOCAL_USER) -> None:
        """Put articles on the reading list (``saved_at`` = ``when``) or take them off.
        Saving an article already saved keeps its first ``saved_at``."""
        ts = to_ts(when)
        with self.transaction() as tx:
            for aid in ids:
                tx.execute(
                    "INSERT INTO reading_state(user_id, article_id, saved, saved_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(user_id, article_id) DO UPDATE SET saved = excluded.saved,"
                    " saved_at = CASE WHEN excluded.saved"
                    " THEN coalesce(reading_state.saved_at, excluded.saved_at) ELSE NULL END",
                    (user, aid, int(saved), ts if saved else None),
                )

    def set_read(self, ids: Sequence[int], read: bool, *, when: datetime, user: int = LOCAL_USER) -> None:
        ts = to_ts(when)
        with self.transaction() as tx:
            for aid in ids:
                tx.execute(
                    "INSERT INTO reading_state(user_id, article_id, read, read_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(user_id, article_id) DO UPDATE SET read = excluded.read,"
                    " read_at = excluded.read_at",
                    (user, aid, int(read), ts if read else None),
                )

    def mark_read_through(
        self, flt: ArticleFilter, through: tuple[int, int], *, when: datetime, user: int = LOCAL_USER
    ) -> int:
        """Mark read every article of a listing from its top down to ``through`` (a keyset
        position: published, id), inclusive ("mark all above as read"). Returns how many."""
        where, params = self.filter_sql(flt)
        ts = to_ts(when)
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO reading_state(user_id, article_id, read, read_at)"
                f" SELECT ?, a.id, 1, ? FROM articles a WHERE {where} AND (a.published, a.id) >= (?, ?)"
                " ON CONFLICT(user_id, article_id) DO UPDATE SET read = 1,"
                " read_at = coalesce(reading_state.read_at, excluded.read_at)",
                [user, ts, *params, through[0], through[1]],
            )
            return max(0, cur.rowcount)

    def set_note(self, article_id: int, note: str | None, *, when: datetime, user: int = LOCAL_USER) -> None:
        """Replace the reader's note on an article (``None`` clears it)."""
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO reading_state(user_id, article_id, note, noted_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(user_id, article_id) DO UPDATE SET note = excluded.note,"
                " noted_at = excluded.noted_at",
                (user, article_id, note, to_ts(when)),
            )

    def reading_list(self, *, since: datetime | None = None, user: int = LOCAL_USER) -> list[Article]:
        """Saved articles, newest saved first (``since``: saved on or after)."""
        sql = (
            f"SELECT {ARTICLE_COLUMNS} FROM reading_state r JOIN articles a ON a.id = r.article_id"
            " WHERE r.user_id = ? AND r.saved = 1"
        )
        params: list[object] = [user]
        if since is not None:
            sql += " AND r.saved_at >= ?"
            params.append(to_ts(since))
        sql += " ORDER BY r.saved_at DESC, a.id DESC"
        return self._with_angles([_article(r) for r in _dicts(self.conn.execute(sql, params))])

    def find_article_by_url(self, url: str) -> int | None:
        """The id of the stored article at exactly this (canonical) URL, if any."""
        row = self.conn.execute(
            "SELECT id FROM articles WHERE url = ? ORDER BY id LIMIT 1", (url,)
        ).fetchone()
        return None if row is None else int(row[0])

    def import_reading_list(
        self,
        entries: Sequence[tuple[Article, str | None]],
        *,
        when: datetime,
        user: int = LOCAL_USER,
    ) -> tuple[int, int]:
        """Save every entry (an article to match by ``uid``/URL, stored as a link-only article
        when there is none) with its note, in one transaction: a crash leaves the old state or
        the new one. Saving order follows ``entries`` (the first is the newest saved, as in an
        exported list). Returns (matched, created)."""
        matched = created = 0
        base = to_ts(when)
        with self.transaction() as tx:
            for position, (art, note) in enumerate(entries):
                aid = self._existing_id(tx, art)
                if aid is None:
                    written = self.upsert_articles([art], source_id=None, conn=tx)
                    aid = written.new[0] if written.new else self._existing_id(tx, art)
                    created += 1
                else:
                    matched += 1
                if aid is None:
                    continue
                ts = base - position  # keeps the list's order: newest saved first
                tx.execute(
                    "INSERT INTO reading_state(user_id, article_id, saved, saved_at, note, noted_at)"
                    " VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT(user_id, article_id) DO UPDATE SET saved = 1,"
                    " saved_at = coalesce(reading_state.saved_at, excluded.saved_at),"
                    " note = coalesce(excluded.note, reading_state.note),"
                    " noted_at = CASE WHEN excluded.note IS NULL THEN reading_state.noted_at"
                    " ELSE excluded.noted_at END",
                    (user, aid, ts, note, base if note is not None else None),
                )
        return matched, created

    @staticmethod
    def _existing_id(conn: sqlite3.Connection, art: Article) -> int | None:
        row = conn.execute("SELECT id FROM articles WHERE uid = ?", (art.uid,)).fetchone()
        if row is None:
            row = conn.execute("SELECT article_id FROM article_aliases WHERE uid = ?", (art.uid,)).fetchone()
        if row is None and art.url:
            row = conn.execute(
                "SELECT id FROM articles WHERE url = ? ORDER BY id LIMIT 1", (art.url,)
            ).fetchone()
        return None if row is None else int(row[0])

    # -- search index support (used by search.py) ----------------------------------------
    def change_marker(self) -> tuple[int, int]:
        """Cheap "did anything change?" token for this thread's connection.

        ``PRAGMA data_version`` moves when another connection commits; ``total_changes``
        moves when this one writes. Equal markers mean the database is unchanged.
        """
        conn = self.conn
        return int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes

    def vector_stats(self, model: str) -> tuple[int, int]:
        """(count, max article id) of the vectors stored for ``model``."""
        row = self.conn.execute(
            "SELECT count(*), coalesce(max(article_id), 0) FROM embeddings WHERE model = ?", (model,)
        ).fetchone()
        return int(row[0]), int(row[1])

    def load_vectors_after(
        self, model: str, after_id: int, *, limit: int
    ) -> tuple[list[int], list[bytes], list[int]]:
        """(ids, vectors, published) of ``model`` with article id > ``after_id``, in id order."""
        rows = self.conn.execute(
            "SELECT e.article_id, e.vec, a.published FROM embeddings e JOIN articles a ON a.id = e.article_id"
            " WHERE e.article_id > ? AND e.model = ? ORDER BY e.article_id LIMIT ?",
            (after_id, model, limit),
        ).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def fts_search_bounded(
        self, match: str, flt: ArticleFilter, *, limit: int, max_steps: int, window: int | None = None
    ) -> list[tuple[int, float]] | None:
        """``fts_search``, abandoned (None) after about ``max_steps`` SQLite VM steps.

        BM25 scores every matching row before LIMIT applies, so a broad OR query costs
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

    def titles(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(title, source name) per article id."""
        out: dict[int, tuple[str, str]] = {}
        for row in select_in(
            self.conn, "SELECT id, title, source_name FROM articles WHERE id IN ({ids})", list(ids)
        ):
            out[row[0]] = (row[1], row[2])
        return out

    def save_passages(
        self,
        model: str,
        items: Iterable[tuple[int, Sequence[tuple[str, bytes]]]],
        *,
        pending: Mapping[int, int] | None = None,
    ) -> None:
        """Replace the (text, vector) passages of the given articles; they are no longer
        pending (see :meth:`save_document_vectors`). With ``pending`` (the tokens read
        before the texts), an article marked again since, because another process stored a
        newer text, is left alone: its newer mark stays for the next second pass."""
        with self.transaction() as tx:
            for aid, passages in items:
                if pending is not None:
                    still = tx.execute(
                        "UPDATE embeddings SET passages_pending = 0"
                        " WHERE article_id = ? AND model = ? AND passages_pending = ?",
                        (aid, model, pending[aid]),
                    )
                    if still.rowcount == 0:
                        continue
                tx.execute("DELETE FROM passages WHERE article_id = ?", (aid,))
                tx.executemany(
                    "INSERT INTO passages(article_id, seq, model, text, vec) VALUES (?, ?, ?, ?, ?)",
                    [(aid, seq, model, text, blob) for seq, (text, blob) in enumerate(passages)],
                )
                tx.execute(
                    "UPDATE embeddings SET passages_pending = 0 WHERE article_id = ? AND model = ?",
                    (aid, model),
                )

    def load_passages(self, model: str, ids: Sequence[int]) -> dict[int, list[tuple[str, bytes]]]:
        """The stored (text, vector) passages of ``model`` per article id, in article order."""
        out: dict[int, list[tuple[str, bytes]]] = {}
        sql = (
            "SELECT article_id, text, vec FROM passages WHERE article_id IN ({ids}) AND model = ?"
            " ORDER BY article_id, seq"
        )
        for aid, text, vec in select_in(self.conn, sql, ids, after=[model]):
            out.setdefault(aid, []).append((text, vec))
        return out

    # -- meta ----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))


# -- helpers -----------------------------------------------------------------------------
def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("engfeed") / "migrations"
    found: list[tuple[int, str]] = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


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


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, object]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _source(row: dict[str, object]) -> Source:
    return Source(
        id=_opt_int(row["id"]),
        name=str(row["name"]),
        url=str(row["url"]),
        site_url=str(row["site_url"] or ""),
        etag=None if row["etag"] is None else str(row["etag"]),
        last_modified=None if row["last_modified"] is None else str(row["last_modified"]),
        last_attempt=from_ts(_opt_int(row["last_attempt"])),
        last_success=from_ts(_opt_int(row["last_success"])),
        http_status=_opt_int(row["http_status"]),
        error=None if row["error"] is None else str(row["error"]),
        failures=int(str(row["failures"])),
        next_due=from_ts(_opt_int(row["next_due"])),
        article_count=int(str(row.get("n") or 0)),
    )


def _article(row: dict[str, object]) -> Article:
    published = from_ts(_opt_int(row["published"]))
    assert published is not None
    return Article(
        id=_opt_int(row["id"]),
        uid=str(row["uid"]),
        source=str(row["source_name"]),
        url=str(row["url"]),
        guid=str(row["guid"]),
        title=str(row["title"]),
        author=str(row["author"]),
        tags=tuple(json.loads(str(row["tags"]))),
        published=published,
        updated=from_ts(_opt_int(row["updated"])),
        date_estimated=bool(row["date_estimated"]),
        first_seen=from_ts(_opt_int(row["first_seen"])),
        excerpt=str(row["excerpt"]),
        summary_html=str(row.get("summary_html") or ""),
        content_html=str(row.get("content_html") or ""),
        text=str(row.get("body") or ""),
        text_source="page" if row.get("text_source") == "page" else "feed",
        page_html=str(row.get("page_html") or ""),
    )


def _decorate(article: Article, angles: tuple[AngleMatch, ...], state: tuple[object, ...] | None) -> Article:
    """The article with its angles and the reader's state attached."""
    if state is None:
        return replace(article, angles=angles)
    saved, read, note, saved_at, read_at = state
    return replace(
        article,
        angles=angles,
        saved=bool(saved),
        read=bool(read),
        note=None if note is None else str(note),
        saved_at=from_ts(_opt_int(saved_at)) if saved else None,
        read_at=from_ts(_opt_int(read_at)) if read else None,
    )
