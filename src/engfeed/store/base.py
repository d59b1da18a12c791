"""The store: articles, sources, vectors, angles and reading state, in domain words.

:class:`Store` is the one storage API that :class:`~engfeed.feed.Feed` and the search engine
call. Its SQL is written once, in the dialect both backends accept (see
:mod:`engfeed.store.sql`); a backend subclass supplies connections, transactions, migrations,
full-text search and change detection: :class:`engfeed.store.sqlite.SQLiteStore` (one file,
the default) and :class:`engfeed.store.postgres.PostgresStore` (a shared server).
``Store(location)`` opens the backend that ``location`` names: a ``postgresql://`` URL or a
file path.

The store itself keeps sources, articles and full-text search; each other domain is a part of
its own module, reached from the store: :attr:`Store.vectors` (document vectors, passages),
:attr:`Store.angles`, :attr:`Store.reading` (saved, read, notes), :attr:`Store.pages`
(article pages and robots.txt), :attr:`Store.summaries`, :attr:`Store.mutes` (mute rules),
:attr:`Store.digests` (digest sends) and :attr:`Store.feedback` (the reader's verdicts on
angles). Invariants both backends keep: one writer at a time (``transaction()`` serialises
writes, as SQLite's ``BEGIN IMMEDIATE`` does), so read-modify-write steps inside one
transaction never race; writes for one source happen in one transaction, so a crash
mid-refresh loses nothing committed and leaves no half source.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, ClassVar

from engfeed.config import is_database_url
from engfeed.errors import EngfeedError
from engfeed.extract import is_teaser
from engfeed.models import Article, ArticleFilter, SchemaStatus, Source
from engfeed.store.angles import AnglesPart
from engfeed.store.digests import DigestsPart
from engfeed.store.feedback import FeedbackPart
from engfeed.store.mutes import MatcherFactory, MutesPart, muted_sql
from engfeed.store.pages import PagesPart
from engfeed.store.reading import ReadingPart
from engfeed.store.rows import ARTICLE_COLUMNS, FULL_COLUMNS, article_row, decorate, dicts, source_row, to_ts
from engfeed.store.sql import Connection, cursors_in, select_in
from engfeed.store.summaries import SummariesPart
from engfeed.store.vectors import SET_META, VectorsPart
from engfeed.text import title_key

SCHEMA_VERSION_TABLE = "schema_migrations"
__all__ = ["LOCAL_USER", "FetchOutcome", "Store", "UpsertResult", "is_database_url", "open_store"]

#: The one implicit reader until there are accounts (migration 0006 creates it).
LOCAL_USER = 1


@dataclass(slots=True)
class UpsertResult:
    """What one source's write did, for the refresh summary and post-processing."""

    new: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    """What one fetch of a source said about its health (see :meth:`Store.apply_fetch`)."""

    attempt: datetime
    ok: bool
    next_due: datetime
    http_status: int | None = None
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    new_url: str | None = None


#: Seconds between the publish times of a post and its mirror (see ``upsert_articles``):
#: a re-post under a fixed slug moves by minutes.
MIRROR_WINDOW = 3600


def _mirrored(conn: Connection, art: Article) -> int | None:
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


def _content_hash(a: Article) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for part in (a.url, a.title, a.author, "\x1f".join(a.tags), a.summary_html, a.content_html, a.excerpt):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    h.update(str(to_ts(a.updated) if a.updated else "").encode())
    return h.hexdigest()


#: Sources with their article counts (the shared head of the source queries).
_SOURCES = "SELECT s.*, (SELECT count(*) FROM articles a WHERE a.source_id = s.id) AS n FROM sources s"

#: The condition of a filter that leaves every article in (``WHERE 1`` is SQLite only).
NO_FILTER = "TRUE"

#: Extra full-text matches ranked when mute rules may drop some (see ``Store.fts_search``).
MUTED_SLACK = 20


def open_store(location: Path | str, *, migrate: bool = True) -> Store:
    """The store at ``location``: a PostgreSQL URL or a SQLite file path (same as
    ``Store(location)``, typed for callers that only know the base class). ``migrate=False``
    opens it without applying pending migrations (a newer schema is refused all the same)."""
    backend = "postgresql" if is_database_url(location) else "sqlite"
    return Store._backends[backend](location, migrate=migrate)


class Store(ABC):
    """A handle on one store. Cheap to create; connections open lazily per thread.

    ``Store(location)`` returns the backend for ``location`` (a path, or a PostgreSQL URL);
    a backend class may also be constructed directly. Opening migrates the schema; a store
    written by a newer engfeed raises :class:`~engfeed.errors.StoreError` and is not touched.
    """

    #: The backend's name (``sqlite``, ``postgresql``): its migrations folder and URL scheme.
    backend: ClassVar[str] = ""
    _backends: ClassVar[dict[str, type[Store]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.backend:
            Store._backends[cls.backend] = cls

    def __new__(cls, location: Path | str, *args: Any, **kwargs: Any) -> Store:
        if cls is Store:  # pick the backend; Python then runs that class's __init__
            cls = Store._backends["postgresql" if is_database_url(location) else "sqlite"]
        return super().__new__(cls)

    def __init__(self, location: Path | str, *, migrate: bool = True) -> None:
        self.location = str(location)
        self.pages = PagesPart(self)
        self.summaries = SummariesPart(self)
        self.mutes = MutesPart(self)
        self.digests = DigestsPart(self)
        self.feedback = FeedbackPart(self)
        self.vectors = VectorsPart(self)
        self.angles = AnglesPart(self)
        self.reading = ReadingPart(self)

    @property
    def location_shown(self) -> str:
        """Where the store is, fit to print (a URL's password hidden)."""
        return self.location

    def release(self) -> None:
        """Done with the database on this thread for now: a backend that pools connections
        gives this thread's back (PostgreSQL); one with a connection per thread keeps it
        (SQLite, whose change marker belongs to the connection)."""
        return None

    def ping(self) -> None:
        """A round trip to the database (raises when it cannot answer)."""
        self.conn.execute("SELECT 1").fetchone()

    def has_job_queue(self) -> bool:
        """Whether the shared job queue was set up in this store (PostgreSQL, once an
        ``engfeed worker`` ran); never on SQLite. An outage raises, it is not a "no"."""
        return False

    def queue_state(self) -> dict[str, int] | None:
        """The shared job queue's state (jobs per status, live workers), or None when this
        store has no queue (SQLite; PostgreSQL before any ``engfeed worker`` ran)."""
        return None

    def after_bulk_load(self, progress: Callable[[str, int, int], None] | None = None) -> None:
        """Called after rows were inserted with their ids (a store copy): let the engine's
        id counters, statistics and derived structures catch up (``progress(stage, done,
        total)`` hears of long steps). Nothing to do by default."""
        return None

    # -- what each backend supplies ---------------------------------------------------------
    @property
    @abstractmethod
    def conn(self) -> Connection:
        """This thread's connection (opened on first use)."""

    @abstractmethod
    def close(self) -> None:
        """Close this thread's connection (the store stays usable: the next use reopens)."""

    def close_all(self) -> None:
        """Close the connections this handle opened (at shutdown); by default this thread's."""
        self.close()

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Connection]:
        """One atomic write: commit on success, roll back on any exception. Writers are
        serialised: while one is open, another waits."""

    @abstractmethod
    def claim_schedule(self) -> bool:
        """Try to become the one process that runs the background schedule on this store
        (``serve``'s refresh and digest), for as long as this handle lives. True when this
        handle holds the claim (again, if it already did); False when another holds it."""

    @abstractmethod
    def migrate(self) -> int:
        """Apply pending numbered migrations; returns the schema version reached."""

    @abstractmethod
    def schema_status(self) -> SchemaStatus:
        """The schema version applied and the newest this engfeed knows."""

    @abstractmethod
    def change_marker(self) -> tuple[int, int]:
        """A cheap "did anything change?" token: equal markers mean nothing was committed
        in between (by this process or another)."""

    @abstractmethod
    def _fts_ranked_sql(
        self, match: str, flt: ArticleFilter, *, limit: int, window: int | None
    ) -> list[tuple[int, float]]:
        """Full-text ranking (best first, positive scores); raises
        :class:`~engfeed.errors.QueryError` for an expression the engine cannot run."""

    @abstractmethod
    def fts_search_bounded(
        self, match: str, flt: ArticleFilter, *, limit: int, max_steps: int, window: int | None = None
    ) -> list[tuple[int, float]] | None:
        """:meth:`fts_search`, abandoned (None) past a work budget of about ``max_steps``
        SQLite VM steps (about 0.1 ms per 1000 here)."""

    # -- sources -----------------------------------------------------------------------
    def sources(self) -> list[Source]:
        rows = self.conn.execute(f"{_SOURCES} ORDER BY s.name COLLATE NOCASE")
        return [source_row(row) for row in dicts(rows)]

    def source(self, name_or_url: str) -> Source | None:
        found = dicts(
            self.conn.execute(
                f"{_SOURCES} WHERE s.name = ? COLLATE NOCASE OR s.url = ?", (name_or_url, name_or_url)
            )
        )
        return source_row(found[0]) if found else None

    def source_by_id(self, source_id: int) -> Source | None:
        found = dicts(self.conn.execute(f"{_SOURCES} WHERE s.id = ?", (source_id,)))
        return source_row(found[0]) if found else None

    def add_source(self, name: str, url: str, site_url: str = "") -> Source:
        with self.transaction() as tx:
            clash = tx.execute(
                "SELECT name, url FROM sources WHERE name = ? COLLATE NOCASE OR url = ?", (name, url)
            ).fetchone()
            if clash is None:  # NOCASE folds ASCII only; PostgreSQL's citext lowers all of Unicode
                key = name.lower()
                clash = next(
                    (
                        row
                        for row in tx.execute("SELECT name, url FROM sources")
                        if str(row[0]).lower() == key
                    ),
                    None,
                )
            if clash:
                what = "feed URL" if clash[1] == url else "name"
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

    def record_fetch(self, source_id: int, outcome: FetchOutcome) -> None:
        """Update one source's health after a fetch that stored nothing."""
        with self.transaction() as tx:
            self._record_fetch(tx, source_id, outcome)

    def _record_fetch(self, conn: Connection, source_id: int, outcome: FetchOutcome) -> None:
        ok, ts = outcome.ok, to_ts(outcome.attempt)
        conn.execute(
            "UPDATE sources SET last_attempt = ?, http_status = ?, error = ?, next_due = ?,"
            " failures = CASE WHEN ? THEN 0 ELSE failures + 1 END,"
            " last_success = CASE WHEN ? THEN ? ELSE last_success END,"
            " etag = CASE WHEN ? THEN ? ELSE etag END,"
            " last_modified = CASE WHEN ? THEN ? ELSE last_modified END"
            " WHERE id = ?",
            (
                ts, outcome.http_status, outcome.error, to_ts(outcome.next_due), ok, ok, ts, ok, outcome.etag,
                ok, outcome.last_modified, source_id,
            ),
        )  # fmt: skip
        if outcome.new_url:
            taken = conn.execute(
                "SELECT 1 FROM sources WHERE url = ? AND id != ?", (outcome.new_url, source_id)
            )
            if taken.fetchone() is None:
                conn.execute("UPDATE sources SET url = ? WHERE id = ?", (outcome.new_url, source_id))

    def apply_fetch(
        self,
        source_id: int,
        articles: Sequence[Article] | None,
        outcome: FetchOutcome,
        *,
        make_matcher: MatcherFactory | None = None,
    ) -> UpsertResult:
        """Store what one fetch of a source gave, in one transaction: its articles (None when
        it gave none: not modified, or failed), their mute-rule matches (``make_matcher``,
        so a muted article is never visible, even for a moment) and the source's health. A
        crash leaves the source as it was before the fetch."""
        with self.transaction() as tx:
            written = UpsertResult()
            if articles is not None:
                written = self.upsert_articles(articles, source_id=source_id, conn=tx)
                if make_matcher is not None:
                    self.mutes.match_pending(make_matcher, conn=tx)
            self._record_fetch(tx, source_id, outcome)
        return written

    def write_articles(
        self,
        articles: Sequence[Article],
        *,
        source_id: int | None,
        make_matcher: MatcherFactory | None = None,
    ) -> UpsertResult:
        """Store articles read from a file (no fetch to record), with their rule matches, in
        one transaction."""
        with self.transaction() as tx:
            written = self.upsert_articles(articles, source_id=source_id, conn=tx)
            if make_matcher is not None:
                self.mutes.match_pending(make_matcher, conn=tx)
        return written

    # -- articles: writes ----------------------------------------------------------------
    def upsert_articles(
        self, articles: Sequence[Article], *, source_id: int | None, conn: Connection
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
                    "INSERT INTO article_aliases(uid, article_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (art.uid, kept),
                )
                result.unchanged += 1
            elif row is None:
                cur = conn.execute(
                    "INSERT INTO articles(uid, source_id, source_name, url, guid, title, author, tags,"
                    " published, updated, date_estimated, first_seen, summary_html, content_html, excerpt,"
                    " body, content_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                    (
                        art.uid, source_id, art.source, art.url, art.guid, art.title, art.author,
                        json.dumps(list(art.tags)), to_ts(art.published),
                        to_ts(art.updated) if art.updated else None, int(art.date_estimated),
                        to_ts(art.first_seen or datetime.now(UTC)), art.summary_html, art.content_html,
                        art.excerpt, art.text, digest,
                    ),
                )  # fmt: skip
                result.new.append(int(cur.fetchone()[0]))
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
        (:data:`NO_FILTER` when it filters nothing). Muted articles are left out unless
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
        return (" AND ".join(clauses) or NO_FILTER), params

    def restricts(self, flt: ArticleFilter) -> bool:
        """Whether ``flt`` leaves out any article (search skips filtering when it does not)."""
        return self.filter_sql(flt)[0] != NO_FILTER

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
        return self.with_state([article_row(r) for r in dicts(rows)])

    def count_articles(self, flt: ArticleFilter = ArticleFilter()) -> int:
        where, params = self.filter_sql(flt)
        return int(self.conn.execute(f"SELECT count(*) FROM articles a WHERE {where}", params).fetchone()[0])

    def article(self, uid: str) -> Article | None:
        """The article with this id, or the one kept in place of the mirror with this id."""
        rows = dicts(self.conn.execute(f"SELECT {FULL_COLUMNS} FROM articles a WHERE a.uid = ?", (uid,)))
        if not rows:
            rows = dicts(
                self.conn.execute(
                    f"SELECT {FULL_COLUMNS} FROM article_aliases m JOIN articles a ON a.id = m.article_id"
                    " WHERE m.uid = ?",
                    (uid,),
                )
            )
        return self.with_state([article_row(rows[0])])[0] if rows else None

    def articles_by_ids(self, ids: Sequence[int], *, full: bool = False) -> dict[int, Article]:
        """Fetch articles by rowid (order not kept: callers rank)."""
        out: dict[int, Article] = {}
        cols = FULL_COLUMNS if full else ARTICLE_COLUMNS
        for rows in cursors_in(self.conn, f"SELECT {cols} FROM articles a WHERE a.id IN ({{ids}})", ids):
            for art in self.with_state([article_row(r) for r in dicts(rows)]):
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
            "SELECT min(source_name), count(*) FROM articles GROUP BY source_name COLLATE NOCASE"
            " ORDER BY count(*) DESC, min(source_name)"
        )
        return [(r[0], r[1]) for r in rows]

    def fts_search(
        self, match: str, flt: ArticleFilter, *, limit: int, window: int | None = None
    ) -> list[tuple[int, float]]:
        """Full-text matches of ``match`` (an expression from :func:`engfeed.query.fts_match`)
        ranked over title (weight 5), excerpt (2) and body (1), best first, as positive
        scores: BM25 on SQLite, BM25-like on PostgreSQL (see each backend's
        ``_fts_ranked_sql``). With ``window`` (and no filter) only the newest ``window``
        matches by id are ranked, so a common term's cost is bounded; with a filter the
        answer is always exact.

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
        return self._fts_ranked_sql(match, flt, limit=limit, window=window)

    def filtered_ids(self, flt: ArticleFilter) -> list[int]:
        where, params = self.filter_sql(flt)
        return [r[0] for r in self.conn.execute(f"SELECT a.id FROM articles a WHERE {where}", params)]

    def published_map(self, ids: Iterable[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for row in select_in(self.conn, "SELECT id, published FROM articles WHERE id IN ({ids})", list(ids)):
            out[row[0]] = row[1]
        return out

    # -- angles --------------------------------------------------------------------------

    def with_state(self, articles: list[Article]) -> list[Article]:
        """The articles with their angles, the reader's state and the mute rules that hide
        them attached (what every listing shows)."""
        ids = [a.id for a in articles if a.id is not None]
        if not ids:
            return articles
        found = self.angles.of(ids)
        states = self.reading.states(ids)
        out = [decorate(a, tuple(found.get(a.id or -1, ())), states.get(a.id or -1)) for a in articles]
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

    def find_article_by_url(self, url: str) -> int | None:
        """The id of the stored article at exactly this (canonical) URL, if any."""
        row = self.conn.execute(
            "SELECT id FROM articles WHERE url = ? ORDER BY id LIMIT 1", (url,)
        ).fetchone()
        return None if row is None else int(row[0])

    def titles(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(title, source name) per article id."""
        out: dict[int, tuple[str, str]] = {}
        for row in select_in(
            self.conn, "SELECT id, title, source_name FROM articles WHERE id IN ({ids})", list(ids)
        ):
            out[row[0]] = (row[1], row[2])
        return out

    # -- meta ----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_default(self, key: str, value: str) -> str:
        """The value stored under ``key``, storing ``value`` first when there is none: the
        first writer wins, so processes that race for a shared secret all get the same."""
        with self.transaction() as tx:
            tx.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, value))
        found = self.get_meta(key)
        assert found is not None
        return found

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.execute(SET_META, (key, value))


# -- helpers -----------------------------------------------------------------------------
def migrations(backend: str) -> list[tuple[int, str]]:
    """The numbered migrations of a backend: ``migrations/NNNN_*.sql`` for SQLite (where the
    store began), ``migrations/<backend>/NNNN_*.sql`` for the others."""
    folder: Traversable = resources.files("engfeed") / "migrations"
    if backend != "sqlite":
        folder = folder / backend
    found: list[tuple[int, str]] = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)
