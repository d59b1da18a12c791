"""Plain data types shared by every layer.

These are deliberately dumb: no I/O, no database handles. The store turns rows into
these, the parser produces them, the CLI and the web app render them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engfeed.urls import redact_credentials


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    """Filters applied *before* ranking, shared by listing, search and output feeds.

    Plain data: the store turns it into SQL (``Store.filter_sql``); the web layer and the
    CLI build it without importing the store."""

    sources: tuple[str, ...] = ()
    angle: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str | None = None  # "unread" or "saved" (the local reader's)
    #: Also the articles the reader's mute rules hide (engfeed.rules); they are marked ``muted``.
    include_muted: bool = False


@dataclass(frozen=True, slots=True)
class Source:
    """A feed the reader follows, plus its fetch health."""

    name: str
    url: str
    site_url: str = ""
    id: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    http_status: int | None = None
    error: str | None = None
    failures: int = 0
    next_due: datetime | None = None
    article_count: int = 0

    def to_json(self) -> dict[str, object]:
        """The public JSON shape of ``sources list --json`` and ``/api/sources``.

        A password in a URL (``https://user:pw@host/feed``) is shown as ``***``: the store
        keeps it for fetching (and OPML export keeps it), no listing ever shows it.
        """
        return {
            "name": self.name,
            "url": redact_credentials(self.url),
            "site_url": redact_credentials(self.site_url),
            "articles": self.article_count,
            "last_attempt": iso(self.last_attempt) if self.last_attempt else None,
            "last_success": iso(self.last_success) if self.last_success else None,
            "http_status": self.http_status,
            "error": redact_credentials(self.error) if self.error else None,
            "failures": self.failures,
            "next_due": iso(self.next_due) if self.next_due else None,
        }


@dataclass(frozen=True, slots=True)
class AngleMatch:
    """Why an article is worth reading to this reader: an angle plus the evidence terms."""

    name: str
    terms: tuple[str, ...]
    score: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "terms": list(self.terms)}


@dataclass(frozen=True, slots=True)
class Article:
    """One entry of one feed, cleaned.

    ``uid`` is the stable public id (derived from the dedup key, see ``urls.dedup_key``).
    ``published`` is always set and in UTC; ``date_estimated`` says it fell back to the
    first-seen time because the feed gave no usable date.
    """

    uid: str
    url: str
    title: str
    published: datetime
    source: str = ""
    author: str = ""
    tags: tuple[str, ...] = ()
    updated: datetime | None = None
    date_estimated: bool = False
    summary_html: str = ""
    content_html: str = ""
    excerpt: str = ""
    text: str = ""  # plain text of the body (content, else summary) for search and embedding
    guid: str = ""
    first_seen: datetime | None = None
    angles: tuple[AngleMatch, ...] = ()
    id: int | None = None  # store rowid, internal
    # The reader's own state (see engfeed.store: reading_state), for the local user.
    saved: bool = False
    read: bool = False
    note: str | None = None
    saved_at: datetime | None = None
    read_at: datetime | None = None
    #: Where ``text`` comes from: the feed itself, or the article page when the feed carried
    #: only a teaser (engfeed.fulltext). ``page_html`` is the page's sanitised article HTML.
    text_source: str = "feed"
    page_html: str = ""
    #: Hidden by the reader's mute rules (engfeed.rules); ``muted_by`` describes those rules.
    #: Listings include muted articles only when asked (``ArticleFilter.include_muted``).
    muted: bool = False
    muted_by: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The public JSON shape of ``list --json`` (a CLI contract: extend, never break)."""
        return {
            "id": self.uid,
            "url": self.url,
            "title": self.title,
            "source": self.source,
            "published": iso(self.published),
            "updated": iso(self.updated) if self.updated else None,
            "date_estimated": self.date_estimated,
            "author": self.author,
            "tags": list(self.tags),
            "excerpt": self.excerpt,
            "angles": [a.to_json() for a in self.angles],
            "saved": self.saved,
            "read": self.read,
            "note": self.note,
            "text_source": self.text_source,
            "muted": self.muted,
        }


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What the parser makes of one document: feed metadata plus its articles."""

    title: str
    link: str
    articles: list[Article] = field(default_factory=list)
    format: str = ""  # "rss20", "atom10", "json", ... as feedparser names it
    warning: str | None = None  # set when the document was ill-formed but still yielded entries


@dataclass(frozen=True, slots=True)
class ScoreBreakdown:
    """Why a hit ranks where it does (the ``why`` of the JSON API and the page's "Why").

    Each side's rank and raw score are None when that side did not find the article:
    ``bm25`` is BM25 (higher is better), ``dense`` the cosine of the document vector (with
    the passage lift), ``recency`` the prior in 0..1, and ``fused`` the score it is ranked by.
    Scores are rounded to 6 decimals, as published."""

    bm25_rank: int | None = None
    dense_rank: int | None = None
    bm25: float | None = None
    dense: float | None = None
    recency: float = 0.0
    fused: float = 0.0

    @classmethod
    def of(
        cls,
        *,
        bm25_rank: int | None = None,
        dense_rank: int | None = None,
        bm25: float | None = None,
        dense: float | None = None,
        recency: float = 0.0,
        fused: float = 0.0,
    ) -> ScoreBreakdown:
        """A breakdown with its scores rounded as published."""
        return cls(
            bm25_rank,
            dense_rank,
            None if bm25 is None else round(bm25, 6),
            None if dense is None else round(dense, 6),
            round(recency, 6),
            round(fused, 6),
        )

    def to_json(self) -> dict[str, float | int | None]:
        """The public JSON shape (keys in this order; unchanged since the first release)."""
        return {
            "bm25_rank": self.bm25_rank,
            "dense_rank": self.dense_rank,
            "bm25": self.bm25,
            "dense": self.dense,
            "recency": self.recency,
            "fused": self.fused,
        }


@dataclass(frozen=True, slots=True)
class SearchHit:
    """An article found by a query, with what makes the ranking explainable."""

    article: Article
    score: float
    context: str = ""  # the passage most related to the query, terms marked with <mark>
    why: ScoreBreakdown = field(default_factory=ScoreBreakdown)

    def to_json(self) -> dict[str, object]:
        data = self.article.to_json()
        data.update({"score": round(self.score, 6), "context": self.context, "why": self.why.to_json()})
        return data


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, the one date format of the public JSON."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a store's schema stands (``engfeed db status``)."""

    backend: str
    location: str
    version: int
    latest: int

    @property
    def pending(self) -> int:
        return max(0, self.latest - self.version)


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    """What ``/healthz`` says of the database: whether it answered, its schema, and the
    shared job queue (jobs per status and live workers; None without a queue)."""

    ok: bool
    backend: str
    schema: int = 0
    latest: int = 0
    queue: dict[str, int] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        if not self.ok:
            return {"ok": False, "backend": self.backend, "error": self.error}
        return {"ok": True, "backend": self.backend, "schema": self.schema, "latest": self.latest}
