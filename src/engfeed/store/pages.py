"""Storage of article pages (full text for teaser feeds) and of robots.txt rules.

A part of the store in domain words: which articles still need their page, what a page gave,
when to try again. Invariants:

* ``articles.body`` (what search, passages, angles and summaries read) becomes the page's
  text only when the page gave an article with more words than the feed's own text; then
  ``articles.text_source = 'page'`` and the article is re-labelled (``angles_sig`` cleared).
* Every fetched page leaves exactly one ``article_pages`` row with its ``next_try``: ``NULL``
  for a page that gave its article (never fetched again unless asked), a later time for the
  rest (see engfeed.fulltext for the retry policy).
* One transaction per page: a crash leaves the old text or the new one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from engfeed.extract import TEASER_WORDS
from engfeed.robots import RobotsRules
from engfeed.store.sql import Connection, select_in
from engfeed.text import html_to_text, make_excerpt


class Database(Protocol):
    """What a store part needs from the store: a connection and atomic writes."""

    @property
    def conn(self) -> Connection: ...

    def transaction(self) -> AbstractContextManager[Connection]: ...


@dataclass(frozen=True, slots=True)
class PageTarget:
    """An article whose page is to be fetched, with the validators of its last fetch."""

    article_id: int
    uid: str
    url: str
    title: str
    etag: str | None = None
    last_modified: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class PageRecord:
    """What one page fetch gave, as stored (``html``/``text`` only for ``status='ok'``)."""

    status: str  # "ok", "not_article", "failed", "blocked", "not_modified"
    reason: str = ""
    url: str = ""
    html: str = ""
    text: str = ""
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    next_try: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredPage:
    status: str
    reason: str
    url: str
    words: int
    fetched: datetime
    attempts: int
    next_try: datetime | None


#: Words of a stored body, in SQL (html_to_text collapses whitespace to single spaces).
BODY_WORDS = "(CASE WHEN a.body = '' THEN 0 ELSE length(a.body) - length(replace(a.body, ' ', '')) + 1 END)"
# Validators go back only for a page that gave its article: a 304 then means "the text you
# hold is current". Sent for a page that was not an article, a 304 would be recorded as
# current (next_try NULL): the page would never be tried again.
_TARGET = (
    "SELECT a.id, a.uid, a.url, a.title,"
    " CASE WHEN p.status = 'ok' THEN p.etag END, CASE WHEN p.status = 'ok' THEN p.last_modified END,"
    " coalesce(p.attempts, 0)"
    " FROM articles a LEFT JOIN article_pages p ON p.article_id = a.id"
)
# Teaser articles with an http(s) link whose page was never fetched or is due again
# (parameters: TEASER_WORDS, now).
_DUE = (
    f"a.text_source = 'feed' AND {BODY_WORDS} < ?"
    " AND (a.url LIKE 'http://%' OR a.url LIKE 'https://%')"
    " AND (p.article_id IS NULL OR (p.next_try IS NOT NULL AND p.next_try <= ?))"
)


class PagesPart:
    def __init__(self, db: Database) -> None:
        self._db = db

    def needing_text(self, limit: int, *, now: datetime) -> list[PageTarget]:
        """Teaser articles (feed text under TEASER_WORDS words) with an http(s) link, never
        fetched or due again, newest first."""
        rows = self._db.conn.execute(
            f"{_TARGET} WHERE {_DUE} ORDER BY a.published DESC, a.id DESC LIMIT ?",
            (TEASER_WORDS, _ts(now), max(0, limit)),
        )
        return [_target(r) for r in rows]

    def missing_count(self, *, now: datetime) -> int:
        """How many articles :meth:`needing_text` would give without a limit."""
        row = self._db.conn.execute(
            f"SELECT count(*) FROM articles a LEFT JOIN article_pages p ON p.article_id = a.id WHERE {_DUE}",
            (TEASER_WORDS, _ts(now)),
        ).fetchone()
        return int(row[0])

    def targets(self, article_ids: list[int]) -> list[PageTarget]:
        """These articles as fetch targets (asked for by id: whatever their state)."""
        found: dict[int, PageTarget] = {}
        for row in select_in(self._db.conn, _TARGET + " WHERE a.id IN ({ids})", article_ids):
            found[int(row[0])] = _target(row)
        return [found[i] for i in article_ids if i in found]

    def record(self, article_id: int, page: PageRecord, *, now: datetime) -> bool:
        """Store what a fetch of this article's page gave; True when the article's text
        changed (the caller re-embeds it)."""
        words = len(page.text.split()) if page.status == "ok" else 0
        with self._db.transaction() as tx:
            if page.status == "not_modified":
                tx.execute(
                    "UPDATE article_pages SET fetched = ?, next_try = ?, http_status = ?,"
                    " etag = coalesce(?, etag), last_modified = coalesce(?, last_modified)"
                    " WHERE article_id = ?",
                    (_ts(now), _opt_ts(page.next_try), page.http_status, page.etag, page.last_modified,
                     article_id),
                )  # fmt: skip
                return False
            tx.execute(
                "INSERT INTO article_pages(article_id, status, reason, url, html, words, http_status, etag,"
                " last_modified, fetched, attempts, next_try) VALUES (?,?,?,?,?,?,?,?,?,?,1,?)"
                " ON CONFLICT(article_id) DO UPDATE SET status = excluded.status, reason = excluded.reason,"
                " url = excluded.url,"
                " html = CASE WHEN excluded.status = 'ok' THEN excluded.html ELSE article_pages.html END,"
                " words = CASE WHEN excluded.status = 'ok' THEN excluded.words ELSE article_pages.words END,"
                " http_status = excluded.http_status, etag = excluded.etag,"
                " last_modified = excluded.last_modified, fetched = excluded.fetched,"
                " attempts = CASE WHEN excluded.status = 'ok' THEN 1 ELSE article_pages.attempts + 1 END,"
                " next_try = excluded.next_try",
                (
                    article_id, page.status, page.reason, page.url, page.html if page.status == "ok" else "",
                    words, page.http_status, page.etag, page.last_modified, _ts(now), _opt_ts(page.next_try),
                ),
            )  # fmt: skip
            if page.status != "ok":
                return False
            row = tx.execute(
                f"SELECT a.text_source, {BODY_WORDS}, a.body FROM articles a WHERE a.id = ?", (article_id,)
            ).fetchone()
            if row is None:
                return False
            source, feed_words, body = str(row[0]), int(row[1]), str(row[2])
            if source == "feed" and words <= feed_words:
                return False  # the feed's own text is as long: keep it
            if source == "page" and body == page.text:
                return False
            tx.execute(
                "UPDATE articles SET body = ?, text_source = 'page', angles_sig = NULL,"
                " excerpt = CASE WHEN excerpt = '' THEN ? ELSE excerpt END WHERE id = ?",
                (page.text, make_excerpt(page.text), article_id),
            )
            tx.execute("DELETE FROM summaries WHERE article_id = ?", (article_id,))
            return True

    def page(self, article_id: int) -> StoredPage | None:
        row = self._db.conn.execute(
            "SELECT status, reason, url, words, fetched, attempts, next_try FROM article_pages"
            " WHERE article_id = ?",
            (article_id,),
        ).fetchone()
        if row is None:
            return None
        return StoredPage(
            status=str(row[0]),
            reason=str(row[1]),
            url=str(row[2]),
            words=int(row[3]),
            fetched=datetime.fromtimestamp(int(row[4]), UTC),
            attempts=int(row[5]),
            next_try=None if row[6] is None else datetime.fromtimestamp(int(row[6]), UTC),
        )

    def stored_text(self, article_id: int, *, conn: Connection | None = None) -> str | None:
        """The plain text of the article page kept for this article (a page that gave its
        article), or None."""
        row = (
            (conn or self._db.conn)
            .execute(
                "SELECT html FROM article_pages WHERE article_id = ? AND status = 'ok' AND html != ''",
                (article_id,),
            )
            .fetchone()
        )
        return html_to_text(str(row[0])) if row else None

    # -- robots.txt ---------------------------------------------------------------------
    def robots(self, origin: str) -> RobotsRules | None:
        row = self._db.conn.execute(
            "SELECT fetched, body, allow_all, deny_all FROM robots WHERE origin = ?", (origin,)
        ).fetchone()
        if row is None:
            return None
        return RobotsRules(
            origin,
            datetime.fromtimestamp(int(row[0]), UTC),
            body=str(row[1]),
            allow_all=bool(row[2]),
            deny_all=bool(row[3]),
        )

    def save_robots(self, rules: RobotsRules) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO robots(origin, fetched, body, allow_all, deny_all) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(origin) DO UPDATE SET fetched = excluded.fetched, body = excluded.body,"
                " allow_all = excluded.allow_all, deny_all = excluded.deny_all",
                (rules.origin, _ts(rules.fetched), rules.body, int(rules.allow_all), int(rules.deny_all)),
            )


def _target(row: tuple[object, ...]) -> PageTarget:
    return PageTarget(
        article_id=int(str(row[0])),
        uid=str(row[1]),
        url=str(row[2]),
        title=str(row[3]),
        etag=None if row[4] is None else str(row[4]),
        last_modified=None if row[5] is None else str(row[5]),
        attempts=int(str(row[6])),
    )


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def _opt_ts(value: datetime | None) -> int | None:
    return None if value is None else _ts(value)
