"""The ``Feed`` facade: the one API the CLI and the web app call.

It wires the edges together (fetching, parsing, storage, embeddings, angles) so that no
caller ever touches SQL or HTTP. Every public method takes and returns plain data types.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit

from engfeed import config
from engfeed.angles_feedback import VERDICTS, FeedbackModel, neighbours
from engfeed.config import DigestSettings
from engfeed.digest import MAX_ENTRIES, Digest, DigestError, check_token, message, unsubscribe_token
from engfeed.digest import due as digest_due
from engfeed.digest import select as select_digest
from engfeed.digest import send as send_mail
from engfeed.digest import week_of as digest_week
from engfeed.errors import ConfigError, EngfeedError, Unavailable
from engfeed.fetch import FetchConfig, FetchResult, fetch_all, next_due
from engfeed.models import Article, ArticleFilter, DatabaseHealth, SchemaStatus, SearchHit, Source, iso
from engfeed.naming import short_name
from engfeed.opml import default_sources, parse_opml, to_opml
from engfeed.parse import MAX_TITLE, ParseError, backfill_dates, parse_feed
from engfeed.readinglist import DEFAULT_TAGS as DEFAULT_LIST_TAGS
from engfeed.readinglist import DEFAULT_TITLE as DEFAULT_LIST_TITLE
from engfeed.readinglist import Entry as ListEntry
from engfeed.readinglist import check_note
from engfeed.readinglist import parse as parse_list
from engfeed.readinglist import render as render_list
from engfeed.rules import ARRIVAL_BUDGET, MAX_RULES, MutePreview, MuteRule, RuleError, TextMatcher, check_rule
from engfeed.store import FetchOutcome, Store, open_store
from engfeed.store.copy import CopyReport, copy_store
from engfeed.store.digests import DigestSend
from engfeed.store.pages import PageTarget
from engfeed.text import clean_text, clip, storable, terminal_safe
from engfeed.urls import article_uid, canonical_url, dedup_key, redact_credentials

if TYPE_CHECKING:
    from engfeed.angles import Angle, AngleExplanation, AngleLabeler
    from engfeed.embed import Embedder
    from engfeed.search import SearchEngine
    from engfeed.summarize import SummaryResult

log = logging.getLogger("engfeed")

#: Bumped when the summariser changes: stored summaries are made again.
SUMMARY_VERSION = "extractive-1"
#: An extractive summary stored because the LLM tier failed is asked of the model again after this.
LLM_RETRY = timedelta(hours=1)
#: Summaries made ahead of time after each background refresh of ``serve`` (about 1 s each).
WARM_SUMMARIES = 20
MAX_FEED_URL = 2048  # characters: what browsers and servers reliably handle
MAX_SOURCE_NAME = 120  # characters; the web filters accept names this long
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".rdf", ".json", ".feed"}

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(slots=True)
class SourceReport:
    """What one refresh or import did for one source or file."""

    name: str
    status: str  # "ok", "not modified", "failed"
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    error: str | None = None
    http_status: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.name,
            "status": self.status,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "error": self.error,
            "http_status": self.http_status,
        }


@dataclass(frozen=True, slots=True)
class PageReport:
    """What fetching one article's page gave."""

    id: str
    url: str
    status: str  # "ok", "not_modified", "not_article", "blocked", "failed"
    reason: str = ""
    words: int = 0
    changed: bool = False  # the article's text is now the page's

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "url": self.url,
            "status": self.status,
            "reason": self.reason or None,
            "words": self.words,
            "changed": self.changed,
        }


@dataclass(slots=True)
class TextReport:
    """What a full-text run did: one item per article page, and how many remain due."""

    items: list[PageReport] = field(default_factory=list)
    remaining: int = 0

    def count(self, status: str) -> int:
        return sum(1 for r in self.items if r.status == status)

    def to_json(self) -> dict[str, object]:
        statuses = ("ok", "not_modified", "not_article", "blocked", "failed")
        return {
            "pages": len(self.items),
            **{s: self.count(s) for s in statuses},
            "remaining": self.remaining,
            "items": [r.to_json() for r in self.items],
        }


@dataclass(slots=True)
class IngestReport:
    items: list[SourceReport] = field(default_factory=list)
    text: TextReport | None = None  # article pages fetched after the feeds (teaser feeds)

    @property
    def failed(self) -> list[SourceReport]:
        return [r for r in self.items if r.status == "failed"]

    def total(self, attr: str) -> int:
        return sum(int(getattr(r, attr)) for r in self.items)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing plus the keyset cursor for the next one."""

    articles: list[Article]
    total: int
    next_cursor: str | None


_Item = TypeVar("_Item")
_DONE = object()


def _on_a_worker_thread(
    name: str,
    produce: Callable[[Callable[[_Item], None]], Coroutine[Any, Any, object]],
    handle: Callable[[_Item], None],
) -> None:
    """Run the coroutine ``produce(put)`` on an event loop while a worker thread hands each
    item it puts to ``handle``: CPU work on an item (parsing, extraction, storing) never
    stalls the loop, so it never eats the other fetches' time budgets.

    An outage (:class:`Unavailable`) raised by ``handle`` stops the handling: the items still
    coming are drained unread (nothing can be stored until the database is back), and the
    outage is raised here once the loop is done. Anything else ``handle`` raises is a bug
    and ends the worker thread, as before."""
    items: queue.Queue[object] = queue.Queue()
    outage: list[Unavailable] = []

    def consume() -> None:
        while (item := items.get()) is not _DONE:
            if not outage:
                try:
                    handle(cast("_Item", item))
                except Unavailable as exc:
                    outage.append(exc)

    worker = threading.Thread(target=consume, name=name, daemon=True)
    worker.start()
    try:
        asyncio.run(produce(items.put))
    finally:
        items.put(_DONE)
        worker.join()
    if outage:
        raise outage[0]


class Feed:
    """Engineering Feed over one store."""

    def __init__(
        self,
        store: Store,
        *,
        fetch_config: FetchConfig | None = None,
        embedder: Embedder | None = None,
        angles_file: Path | None = None,
        refresh_interval: timedelta = timedelta(minutes=config.DEFAULT_REFRESH_MINUTES),
        lenient_angles: bool = False,
        fulltext: bool | None = None,
    ) -> None:
        """``lenient_angles``: a broken angles file falls back to the bundled angles (the web
        server keeps serving, and says so in :attr:`angles_warning`) instead of raising
        :class:`~engfeed.errors.ConfigError` on first use. ``fulltext``: fetch the article
        pages of teaser feeds after each refresh (default: ``ENGFEED_FULLTEXT``, on)."""
        self.store = store
        self.lenient_angles = lenient_angles
        self.angles_warning: str | None = None
        self.fetch_config = fetch_config or FetchConfig()
        self.embedder = embedder
        self.angles_file = angles_file
        self.refresh_interval = refresh_interval
        self.fulltext = config.fulltext_enabled() if fulltext is None else fulltext
        self._search: SearchEngine | None = None
        self._labeler: AngleLabeler | None = None
        self._feedback_version: int | None = None  # the verdicts' serial the feedback model was built at
        self._feedback_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._stale: set[int] = set()  # updated in place since the last index_pending: re-embed
        self._matcher: tuple[tuple[object, ...], TextMatcher] | None = None  # compiled text rules
        self._embedding: _EmbedRun | None = None  # the embedding run in progress, if any

    @classmethod
    def open(
        cls,
        db: str | Path | None = None,
        *,
        angles_file: str | Path | None = None,
        embed: bool | None = None,
        fetch_config: FetchConfig | None = None,
        lenient_angles: bool = False,
    ) -> Feed:
        """Open (creating if needed) the store at ``db`` (a SQLite path or a PostgreSQL URL),
        else the one ``ENGFEED_DATABASE_URL``, ``ENGFEED_DB`` or the platform default names."""
        store = open_store(config.store_location(db))
        if fetch_config is None:
            fetch_config = FetchConfig(allow_private=config.fetch_private_allowed())
        use_embed = config.embeddings_enabled() if embed is None else embed
        embedder = None
        if use_embed:
            from engfeed.embed import get_embedder

            embedder = get_embedder()
        return cls(
            store,
            embedder=embedder,
            angles_file=config.angles_path(angles_file),
            fetch_config=fetch_config,
            lenient_angles=lenient_angles,
        )

    def close(self) -> None:
        if self._search is not None:
            self._search.close()
        self.store.close_all()

    # -- the database (engfeed db ..., /healthz) -------------------------------------------
    def health(self) -> DatabaseHealth:
        """The database's state for ``/healthz``. Never raises: a database that does not
        answer is what it reports (the reason goes to the log)."""
        try:
            self.store.ping()
            status = self.store.schema_status()
            queue = self.store.queue_state()
        except Exception as exc:
            log.warning("health check: the database did not answer: %s", exc)
            return DatabaseHealth(False, self.store.backend, error="the database did not answer")
        return DatabaseHealth(True, status.backend, status.version, status.latest, queue)

    def release_connection(self) -> None:
        """Done with the store on this thread for now (the web server calls this after each
        piece of work it runs on a worker thread): a pooled connection goes back."""
        self.store.release()

    def claim_schedule(self) -> bool:
        """Whether this process runs the background schedule on this store: the first of
        several ``serve`` processes does, the others serve pages only."""
        return self.store.claim_schedule()

    def queue_state(self) -> dict[str, int] | None:
        """The job queue's state (jobs per status, live workers), or None without a queue."""
        return self.store.queue_state()

    @property
    def has_job_queue(self) -> bool:
        """Whether ``engfeed worker`` processes run the background work (a PostgreSQL store
        whose queue was set up): ``serve`` then leaves refreshing to them.

        A database that does not answer raises :class:`DatabaseUnavailable`: read as "no
        queue", ``serve`` would start refreshing in-process next to the workers."""
        return self.store.has_job_queue()

    @staticmethod
    def schema_status(db: str | Path | None = None) -> SchemaStatus:
        """Where the schema of the store at ``db`` stands, without migrating it."""
        store = open_store(config.store_location(db), migrate=False)
        try:
            return store.schema_status()
        finally:
            store.close_all()

    @staticmethod
    def upgrade(db: str | Path | None = None) -> tuple[SchemaStatus, SchemaStatus]:
        """Apply the pending migrations of the store at ``db``: (before, after)."""
        store = open_store(config.store_location(db), migrate=False)
        try:
            before = store.schema_status()
            store.migrate()
            return before, store.schema_status()
        finally:
            store.close_all()

    def copy_to(self, destination: str | Path, *, progress: ProgressFn | None = None) -> CopyReport:
        """Copy this whole store into the new, empty store at ``destination`` (a SQLite path
        or a PostgreSQL URL; created and migrated as needed). See engfeed.store.copy."""
        dest = open_store(config.store_location(destination))
        try:
            return copy_store(self.store, dest, progress=progress)
        finally:
            dest.close_all()

    # -- sources -----------------------------------------------------------------------
    def sources(self) -> list[Source]:
        return self.store.sources()

    def source(self, name_or_url: str) -> Source | None:
        return self.store.source(name_or_url)

    def add_source(self, url: str, name: str | None = None, *, discover: bool = True) -> Source:
        """Subscribe to a feed; an HTML page's URL is resolved to its feed via ``<link rel=alternate>``."""
        url = url.strip()
        check_feed_url(url)
        if name is not None:
            name = clean_text(name, MAX_SOURCE_NAME)
            if not name:
                raise EngfeedError("the source name is empty")
        feed_url, title, site = url, "", ""
        if discover:
            from engfeed.discover import discover as discover_feed

            try:
                feed_url = asyncio.run(discover_feed(url, self.fetch_config))
            except EngfeedError:
                if not name:
                    raise
                # With an explicit name, keep the URL as given: the first refresh records any error.
        if not name and discover:
            title, site = self._peek_title(feed_url)
        return self.store.add_source(name or short_name(title, site or feed_url), feed_url, site)

    def _peek_title(self, url: str) -> tuple[str, str]:
        source = Source(name="probe", url=url)
        results = asyncio.run(fetch_all([source], self.fetch_config))
        result = results[0]
        if result.error or not result.body:
            return "", ""
        try:
            parsed = parse_feed(result.body, url=result.final_url, headers=result.headers)
        except ParseError:
            return "", ""
        return parsed.title, parsed.link

    def remove_source(self, name_or_url: str) -> Source:
        return self.store.remove_source(name_or_url)

    def import_opml(self, data: bytes | str) -> tuple[list[Source], list[str]]:
        """Add every feed of an OPML file; returns (added, skipped-with-reason)."""
        return self._add_outlines(parse_opml(data))

    def add_default_sources(self) -> tuple[list[Source], list[str]]:
        return self._add_outlines(default_sources())

    def _add_outlines(self, outlines: Iterable[object]) -> tuple[list[Source], list[str]]:
        added: list[Source] = []
        skipped: list[str] = []
        for outline in outlines:
            name, url, site = (getattr(outline, k) for k in ("name", "url", "site_url"))
            try:
                check_feed_url(url)  # the same rule as `sources add`: file:, javascript: ... skipped
                added.append(self.store.add_source(short_name(name, site or url), url, site))
            except EngfeedError as exc:
                skipped.append(f"{name}: {exc}")
        return added, skipped

    def export_opml(self) -> str:
        return to_opml(self.sources())

    # -- ingest ------------------------------------------------------------------------
    def refresh(
        self,
        names: Sequence[str] = (),
        *,
        only_due: bool = False,
        on_source: Callable[[SourceReport], None] | None = None,
        progress: ProgressFn | None = None,
    ) -> IngestReport:
        """Fetch sources concurrently, store each in its own transaction, then index what is new.

        Parsing and writing happen on a worker thread fed by a queue, so a slow parse never
        stalls the event loop (and thus never eats other sources' time budgets).
        """
        sources = self._select_sources(names, only_due=only_due)
        report = IngestReport()
        if not sources:
            return report

        def store_one(item: FetchResult) -> None:
            try:
                entry = self._apply_fetch(item)
            except Unavailable:
                raise  # the database went away: the refresh stops, and says so
            except Exception as exc:  # a bug or a full disk: that source fails, the others go on
                entry = SourceReport(item.source.name, "failed", error=f"{type(exc).__name__}: {exc}")
            report.items.append(entry)
            if on_source:
                on_source(entry)
            if progress:
                progress("fetch", len(report.items), len(sources))

        _on_a_worker_thread(
            "engfeed-ingest", lambda put: fetch_all(sources, self.fetch_config, on_result=put), store_one
        )
        if self.fulltext:
            limit = config.fulltext_per_run()
            report.text = self._fetch_text(
                self.store.pages.needing_text(limit, now=datetime.now(UTC)), progress
            )
        self.index_pending(progress)
        return report

    def due_sources(self) -> list[Source]:
        """The sources whose next fetch is due (for a job queue's planner)."""
        return self._select_sources((), only_due=True)

    def refresh_source(self, source_id: int, *, only_due: bool = True) -> SourceReport | None:
        """Fetch and store one source, and nothing else (no full text, no indexing: a job
        queue runs those as jobs of their own). With ``only_due`` (the default) a source
        that is not due, because another worker fetched it since it was planned, is left
        alone: None. None too when the source is gone."""
        found = self.store.source_by_id(source_id)
        if found is None or (only_due and found.next_due is not None and found.next_due > datetime.now(UTC)):
            return None
        result = asyncio.run(fetch_all([found], self.fetch_config))[0]
        return self._apply_fetch(result)

    def _select_sources(self, names: Sequence[str], *, only_due: bool) -> list[Source]:
        if names:
            chosen = []
            for name in names:
                found = self.store.source(name)
                if found is None:
                    raise EngfeedError(f"no such source: {name}")
                chosen.append(found)
            return chosen
        now = datetime.now(UTC)
        everything = self.store.sources()
        if only_due:
            return [s for s in everything if s.next_due is None or s.next_due <= now]
        return everything

    def _apply_fetch(self, result: FetchResult) -> SourceReport:
        src = result.source
        assert src.id is not None
        now = datetime.now(UTC)
        entry = SourceReport(src.name, "ok", http_status=result.status)
        error = result.error
        parsed = None
        if not error and not result.not_modified and result.body is not None:
            try:
                parsed = parse_feed(
                    result.body, url=result.final_url, headers=result.headers, source=src.name
                )
            except ParseError as exc:
                error = str(exc)
            if parsed is not None and src.last_success is None:  # the first fetch is a backfill
                parsed = replace(parsed, articles=backfill_dates(parsed.articles))
        ok = error is None
        failures = 0 if ok else src.failures + 1
        due = next_due(
            now=now, failures=failures, interval=self.refresh_interval, retry_after=result.retry_after
        )
        outcome = FetchOutcome(
            attempt=now,
            ok=ok,
            next_due=due,
            http_status=result.status,
            error=error,
            etag=result.etag,
            last_modified=result.last_modified,
            new_url=result.permanent_url,
        )
        articles = None if parsed is None else [replace(a, source=src.name) for a in parsed.articles]
        written = self.store.apply_fetch(src.id, articles, outcome, make_matcher=self._mute_matcher)
        if articles is not None:
            entry.new, entry.updated, entry.unchanged = (
                len(written.new),
                len(written.updated),
                written.unchanged,
            )
            self._stale.update(written.updated)
        if not ok:
            entry.status, entry.error = "failed", error
        elif result.not_modified:
            entry.status = "not modified"
        return entry

    def import_paths(
        self,
        paths: Sequence[str | Path],
        *,
        source: str | None = None,
        on_file: Callable[[str, SourceReport], None] | None = None,
        progress: ProgressFn | None = None,
    ) -> IngestReport:
        """Ingest local feed files or folders; a bad file is reported, never fatal."""
        report = IngestReport()
        files = list(_expand(paths))
        for done, path in enumerate(files, 1):
            entry = self._import_file(path, source)
            report.items.append(entry)
            if on_file:
                on_file(_path_text(path), entry)
            if progress:
                progress("import", done, len(files))
        self.index_pending(progress)
        return report

    def _import_file(self, path: Path, source: str | None) -> SourceReport:
        limit = self.fetch_config.max_bytes  # the same cap as a fetched document
        try:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            return SourceReport(_path_text(path), "failed", error=f"cannot read: {exc.strerror or exc}")
        if len(data) > limit:
            return SourceReport(
                _path_text(path), "failed", error=f"larger than {limit // 1024 // 1024} MB; not read"
            )
        try:
            parsed = parse_feed(data, url="", source=source or "")
        except ParseError as exc:
            return SourceReport(_path_text(path), "failed", error=str(exc))
        name = source or short_name(parsed.title, parsed.link, fallback=_path_text(path.stem))
        articles = [replace(a, source=name) for a in backfill_dates(parsed.articles)]
        known = self.store.source(name)
        written = self.store.write_articles(
            articles, source_id=known.id if known else None, make_matcher=self._mute_matcher
        )
        self._stale.update(written.updated)
        return SourceReport(
            name, "ok", new=len(written.new), updated=len(written.updated), unchanged=written.unchanged
        )

    # -- full text ----------------------------------------------------------------------
    def fetch_text(
        self,
        uids: Sequence[str] = (),
        *,
        missing: bool = False,
        limit: int | None = None,
        progress: ProgressFn | None = None,
    ) -> TextReport:
        """Fetch article pages and keep their text: these articles (whatever their state,
        with a conditional GET when fetched before), or with ``missing`` the teaser articles
        whose page is due, newest first, at most ``limit`` (default ``ENGFEED_FULLTEXT_PER_RUN``).
        Updated articles are re-embedded and re-labelled before this returns."""
        if uids:
            ids = [a.id for a in self.resolve(uids) if a.id is not None]
            targets = self.store.pages.targets(ids)
        elif missing:
            cap = config.fulltext_per_run() if limit is None else max(0, limit)
            targets = self.store.pages.needing_text(cap, now=datetime.now(UTC))
        else:
            raise EngfeedError("name articles by id, or ask for --missing")
        report = self._fetch_text(targets, progress)
        self.index_pending(progress)
        return report

    def _fetch_text(self, targets: Sequence[PageTarget], progress: ProgressFn | None) -> TextReport:
        """Fetch on the event loop, extract and store on a worker thread (extraction is CPU
        work: ~30 ms a page), as refresh does with feeds."""
        from engfeed.fulltext import fetch_pages, outcome_of

        report = TextReport()
        if targets:

            def record(item: tuple[PageTarget, FetchResult | None, str | None]) -> None:
                now = datetime.now(UTC)
                try:
                    outcome = outcome_of(*item, now=now)
                    changed = self.store.pages.record(outcome.target.article_id, outcome.record, now=now)
                    rec = outcome.record
                    entry = PageReport(
                        outcome.target.uid, outcome.target.url, rec.status, rec.reason,
                        len(rec.text.split()), changed,
                    )  # fmt: skip
                except Unavailable:
                    raise
                except Exception as exc:  # a bug or a full disk: this page fails, the rest go on
                    log.warning("full text of %s failed: %s", item[0].url, exc)
                    entry = PageReport(item[0].uid, item[0].url, "failed", f"{type(exc).__name__}: {exc}")
                    changed = False
                if changed:
                    self._stale.add(item[0].article_id)
                report.items.append(entry)
                if progress:
                    progress("text", len(report.items), len(targets))

            _on_a_worker_thread(
                "engfeed-fulltext",
                lambda put: fetch_pages(targets, self.store.pages, self.fetch_config, lambda *r: put(r)),
                record,
            )
        report.remaining = self.store.pages.missing_count(now=datetime.now(UTC))
        return report

    # -- summaries ----------------------------------------------------------------------
    def summary_method(self) -> str:
        """Names how summaries are made now (version, model, LLM tier); stored with each."""
        llm = config.llm_settings()
        base = f"{SUMMARY_VERSION}:{self.embedder.name if self.embedder else 'lexical'}"
        return base + (f":llm:{llm[1]}@{llm[0]}" if llm else "")

    def summary(self, article: Article, *, compute: bool = True) -> SummaryResult:
        """The deep summary of an article (from :meth:`article`): the stored one when it was
        made from the current text by the current method, else made now (about 1 s for 3,000
        words) and stored, unless ``compute`` is false."""
        from engfeed.summarize import MIN_WORDS, Summary, SummaryResult, summarize, text_hash

        if article.id is None:
            raise EngfeedError(f"no such article: {article.uid}")
        method = self.summary_method()
        digest = text_hash(article, method)
        stored = self.store.summaries.get(article.id, digest)
        if stored is not None:
            kept = Summary.from_json(json.loads(stored))
            made = self.store.summaries.made_at(article.id)
            # The model server was down when this was made: ask it again after a while.
            stale_fallback = (
                config.llm_settings() is not None
                and kept.method == "extractive"
                and (made is None or datetime.now(UTC) - made > LLM_RETRY)
            )
            if not stale_fallback:
                return SummaryResult(kept)
        if len(article.text.split()) < MIN_WORDS:
            return SummaryResult(None, f"too short to summarise (summaries start at {MIN_WORDS} words)")
        if not compute:
            return SummaryResult(None, "not summarised yet")
        result = summarize(article, self.embedder, llm_settings=config.llm_settings())
        if result.summary is not None:
            data = json.dumps(result.summary.to_json(), ensure_ascii=False)
            self.store.summaries.save(article.id, digest, method, data, now=datetime.now(UTC))
        return result

    def warm_summaries(self, limit: int = WARM_SUMMARIES) -> int:
        """Make the summaries of the newest long articles that have none yet (the web
        server's background refresh calls this, so opening a new article does not wait
        for its summary); returns how many were made."""
        from engfeed.summarize import MIN_WORDS

        ids = self.store.summaries.missing(self.summary_method(), min_words=MIN_WORDS, limit=limit)
        made = 0
        for art in self.store.articles_by_ids(ids, full=True).values():  # page HTML included
            if self.summary(art).summary is not None:
                made += 1
        return made

    def stored_summaries(self, articles: Sequence[Article]) -> dict[str, dict[str, object]]:
        """Summaries already made (by the current method) for these articles, by public id,
        as JSON objects: listings show what exists and never compute."""
        ids = {a.id: a.uid for a in articles if a.id is not None}
        found = self.store.summaries.get_many(list(ids), self.summary_method())
        return {ids[aid]: json.loads(data) for aid, data in found.items()}

    # -- indexing (embeddings, angles) -------------------------------------------------
    @property
    def search_engine(self) -> SearchEngine:
        if self._search is None:
            from engfeed.search import SearchEngine

            self._search = SearchEngine(self.store, self.embedder)
        return self._search

    @property
    def labeler(self) -> AngleLabeler:
        if self._labeler is None:
            from engfeed.angles import AngleLabeler

            self._labeler = AngleLabeler(self._load_angles(), self.embedder)
            self._install_feedback(self._labeler)
        return self._labeler

    def _labeler_now(self) -> AngleLabeler:
        """:attr:`labeler` with the verdicts as stored now: another process (a second web
        worker, the CLI next to ``serve``, a queue worker) may have recorded one since this
        one built its feedback model, and a stale model would undo it when it labels."""
        labeler = self.labeler
        if self.store.feedback.version() != self._feedback_version:
            self._install_feedback(labeler)
        return labeler

    def label_pending(self) -> None:
        """Label the articles whose angles were made under other angles or another model (an
        edited angles file, a run without the model): labels only, nothing embedded."""
        with self._index_lock:
            self._labeler_now().label_pending(self.store, None)

    def _load_angles(self) -> list[Angle]:
        from engfeed.angles import load_angles

        try:
            return load_angles(self.angles_file)
        except ConfigError as exc:
            if not self.lenient_angles:
                raise
            self.angles_warning = f"{exc}. Using the bundled angles until the file is fixed."
            log.warning("%s", self.angles_warning)
            return load_angles(None)

    def check_angles(self) -> None:
        """Raise :class:`~engfeed.errors.ConfigError` now if the angles file is unusable, so a
        command fails before it writes anything (never raises when lenient)."""
        if self._labeler is None:
            self._load_angles()

    def angles(self) -> list[Angle]:
        return list(self.labeler.angles)

    def index_pending(self, progress: ProgressFn | None = None) -> None:
        """Embed and angle-label whatever is new; cheap when nothing is.

        In order: document vectors (concept search covers an article from then on, and the
        page's coverage note counts them), angles (they read those vectors), then passages
        (the passage lift and the contexts of concept queries; see ``SearchEngine``)."""
        self._match_mutes()  # articles stored by other paths (pages, the reading list)
        with self._index_lock:
            stale, self._stale = sorted(self._stale), set()
            engine = self.search_engine if self.embedder is not None else None
            if engine is not None:
                self._embedding = _EmbedRun(time.monotonic())
                embed_progress = _stage(progress, "embed")

                def track(done: int, total: int) -> None:
                    self._embedding = _EmbedRun(
                        self._embedding.started if self._embedding else 0.0, done, total
                    )
                    if embed_progress is not None:
                        embed_progress(done, total)

                try:
                    engine.embed_missing(track)
                finally:
                    self._embedding = None
                engine.embed_documents(stale, patch=True)
            self._labeler_now().label_pending(self.store, _stage(progress, "angles"))
            if engine is not None:
                engine.embed_pending_passages(_stage(progress, "passages"))
                engine.prepare_store()

    def reindex(self, progress: ProgressFn | None = None) -> int:
        with self._index_lock:
            engine = self.search_engine if self.embedder is not None else None
            count = engine.embed_documents(self.store.all_ids(), _stage(progress, "embed")) if engine else 0
            self._labeler_now().label_pending(self.store, _stage(progress, "angles"))
            if engine is not None:
                engine.embed_pending_passages(_stage(progress, "passages"))
                engine.prepare_store()
        return count

    # -- reading -----------------------------------------------------------------------
    def articles(
        self, flt: ArticleFilter = ArticleFilter(), *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Newest first by publish date; ``cursor`` continues after the previous page."""
        before = decode_cursor(cursor) if cursor else None
        items = self.store.list_articles(flt, limit=limit + 1, before=before)
        more = len(items) > limit
        items = items[:limit]
        nxt = encode_cursor(items[-1]) if more and items else None
        return Page(items, self.store.count_articles(flt), nxt)

    def article(self, uid: str) -> Article | None:
        return self.store.article(uid)

    def search(self, query: str, flt: ArticleFilter = ArticleFilter(), *, limit: int = 20) -> list[SearchHit]:
        return self.search_engine.search(query, flt, limit=limit)

    def related(self, uid: str, *, limit: int = 10) -> list[SearchHit]:
        found = self.store.article(uid)
        if found is None or found.id is None:
            raise EngfeedError(f"no such article: {uid}")
        return self.search_engine.related(found.id, limit=limit)

    def search_coverage(self) -> SearchCoverage:
        """How many articles concept search covers (have a vector of the current model) of all
        stored ones, and, while this process embeds the rest, when it expects to be done.
        Keyword search covers every stored article from the moment it is committed."""
        total = self.store.count_articles(ArticleFilter(include_muted=True))
        if self.embedder is None:
            return SearchCoverage(0, total, enabled=False)
        embedded = min(total, self.store.vectors.stats(self.embedder.name)[0])
        run = self._embedding
        eta = None
        if run is not None and run.done > 0 and run.total > run.done:
            rate = run.done / max(1e-6, time.monotonic() - run.started)
            eta = (run.total - run.done) / rate
        return SearchCoverage(embedded, total, eta_s=eta)

    def source_counts(self) -> list[tuple[str, int]]:
        return self.store.source_counts()

    def angle_counts(self) -> list[tuple[str, int]]:
        return self.store.angles.counts()

    def count(self, flt: ArticleFilter = ArticleFilter()) -> int:
        return self.store.count_articles(flt)

    # -- reading workflow ----------------------------------------------------------------
    def resolve(self, uids: Sequence[str]) -> list[Article]:
        """The articles with these public ids, in order; :class:`EngfeedError` names the
        first id that matches none (and nothing is changed)."""
        found: list[Article] = []
        for uid in uids:
            art = self.store.article(uid.strip()) if len(uid) <= 200 else None
            if art is None or art.id is None:
                raise EngfeedError(f"no such article: {terminal_safe(uid)[:80]}")
            found.append(art)
        return found

    def save(self, uids: Sequence[str], *, note: str | None = None) -> list[Article]:
        """Put articles on the reading list; ``note`` (when given) replaces each one's note (a
        blank one clears it). A note that cannot be stored is refused before anything changes."""
        if note is not None:
            check_note(note)
        articles = self.resolve(uids)
        now = datetime.now(UTC)
        ids = [a.id for a in articles if a.id is not None]
        self.store.reading.set_saved(ids, True, when=now)
        if note is not None:
            for aid in ids:
                self.store.reading.set_note(aid, note if note.strip() else None, when=now)
        return self.resolve(uids)

    def unsave(self, uids: Sequence[str]) -> list[Article]:
        articles = self.resolve(uids)
        self.store.reading.set_saved(
            [a.id for a in articles if a.id is not None], False, when=datetime.now(UTC)
        )
        return self.resolve(uids)

    def set_note(self, uid: str, note: str | None) -> Article:
        """Replace (``None``, ``""`` or only whitespace: clear) the reader's note on one article."""
        if note:
            check_note(note)
        [art] = self.resolve([uid])
        assert art.id is not None
        self.store.reading.set_note(art.id, note if note and note.strip() else None, when=datetime.now(UTC))
        return self.resolve([uid])[0]

    def mark_read(self, uids: Sequence[str], read: bool = True) -> list[Article]:
        articles = self.resolve(uids)
        self.store.reading.set_read(
            [a.id for a in articles if a.id is not None], read, when=datetime.now(UTC)
        )
        return self.resolve(uids)

    def mark_read_through(self, flt: ArticleFilter, through: tuple[int, int]) -> int:
        """Mark read every article of a listing down to the keyset position ``through``."""
        return self.store.reading.mark_read_through(flt, through, when=datetime.now(UTC))

    def reading_list(self, *, since: datetime | None = None) -> list[Article]:
        """Saved articles, newest saved first."""
        return self.store.reading.saved_articles(since=since)

    def export_reading_list(
        self, *, title: str | None = None, since: datetime | None = None, fmt: str = "md"
    ) -> str:
        """The reading list as Markdown in the seed's shape (``fmt="md"``) or as JSON (the
        ``reading-list --json`` items). The title and tags default to those of the last
        imported list, else "Reading list"."""
        saved = self.reading_list(since=since)
        if fmt == "json":
            return json.dumps([reading_list_json(a) for a in saved], ensure_ascii=False, indent=2) + "\n"
        if fmt != "md":
            raise EngfeedError(f"unknown format {fmt!r}: use md or json")
        title = title or self.store.get_meta(_LIST_TITLE) or DEFAULT_LIST_TITLE
        tags = json.loads(self.store.get_meta(_LIST_TAGS) or "null") or list(DEFAULT_LIST_TAGS)
        return render_list((ListEntry(a.title, a.url, a.note) for a in saved), title=title, tags=tags)

    def import_reading_list(self, text: str) -> ReadingListImport:
        """Save every entry of a Markdown reading list, matched to stored articles by canonical
        URL (tracking parameters, ``www.`` and http/https ignored); an entry with no stored
        article becomes a saved link-only article of the source "Reading list". One
        transaction: a crash leaves the old state or the new one. Importing the same file
        twice changes nothing."""
        parsed = parse_list(text)
        for entry in parsed.entries:
            if entry.note is not None:
                check_note(entry.note)
        now = datetime.now(UTC)
        when = _list_date(parsed.date) or now
        pairs: list[tuple[Article, str | None]] = []
        invalid: list[str] = []
        for entry in parsed.entries:
            url = entry.url.strip()
            canonical = canonical_url(url)
            if not canonical.startswith(("http://", "https://")) or len(url) > 8192:
                invalid.append(f"{entry.title}: not an http(s) URL")
                continue
            art = Article(
                uid=article_uid(dedup_key(canonical)),
                url=url,  # as the reader wrote it; matching uses the canonical form
                title=clip(entry.title, MAX_TITLE) or url,
                published=when,
                source=READING_LIST_SOURCE,
                date_estimated=True,
                first_seen=now,
                excerpt="",
                text="",
            )
            pairs.append((art, entry.note))
        meta = [(_LIST_TITLE, parsed.title)]
        if parsed.tags is not None:
            meta.append((_LIST_TAGS, json.dumps(list(parsed.tags))))
        matched, created = self.store.reading.import_list(pairs, when=now, meta=meta)
        self.index_pending()
        return ReadingListImport(matched, created, [*parsed.skipped, *invalid])

    # -- angle feedback (engfeed.angles_feedback) ------------------------------------------
    def angle_feedback(self, uid: str, angle: str, verdict: str) -> AngleFeedbackResult:
        """The reader's verdict on one angle of one article: ``yes`` (add it), ``no`` (not this
        angle) or ``clear``. Final for the article; an example for similar ones, which are
        re-labelled at once. :class:`EngfeedError` for an unknown article, angle or verdict."""
        if verdict not in VERDICTS:
            raise EngfeedError(f"unknown verdict {terminal_safe(verdict)[:20]!r}: use yes, no or clear")
        [art] = self.resolve([uid])
        assert art.id is not None
        name = self._angle_name(angle)
        self.store.feedback.set(art.id, name, VERDICTS[verdict], now=datetime.now(UTC))
        return self._relabel_after_feedback([art.id], uid)

    def explain_angles(self, uid: str) -> list[AngleExplanation]:
        """Every angle's decision on one article with its figures (``angles explain``)."""
        [art] = self.resolve([uid])
        assert art.id is not None
        title, excerpt, body = self.store.bodies([art.id])[art.id]
        vector = self._stored_vectors([art.id]).get(art.id)
        return self._labeler_now().explain(title, excerpt, body, vector, article_id=art.id)

    def export_feedback(self) -> str:
        """The reader's angle verdicts as JSON, keyed by article URL, to keep across stores."""
        rows = [
            {"url": r.url, "title": r.title, "angle": r.angle, "verdict": "yes" if r.verdict > 0 else "no",
             "created": iso(r.created)}
            for r in self.store.feedback.all()
        ]  # fmt: skip
        return (
            json.dumps({"engfeed_angle_feedback": 1, "feedback": rows}, ensure_ascii=False, indent=2) + "\n"
        )

    def import_feedback(self, text: str) -> FeedbackImport:
        """Record the verdicts of an exported file on the stored articles with the same URL
        (canonical match); the rest are reported, never an error. One transaction."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise EngfeedError("not an angle feedback file: nested too deeply") from None
        except ValueError as exc:
            raise EngfeedError(f"not an angle feedback file (JSON): {exc}") from None
        items = data.get("feedback") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise EngfeedError('not an angle feedback file: no "feedback" list')
        names = {a.name.casefold(): a.name for a in self.angles()}
        rows: list[tuple[int, str, int]] = []
        skipped: list[str] = []
        for item in items[:100_000]:
            if not isinstance(item, dict):
                skipped.append("an entry that is not an object")
                continue
            url, angle, verdict = item.get("url"), item.get("angle"), item.get("verdict")
            if not isinstance(url, str) or not isinstance(angle, str) or verdict not in ("yes", "no"):
                skipped.append(f"an entry without url, angle and yes/no: {storable(str(item)[:80])}")
                continue
            if storable(url + angle) != url + angle:  # "\ud800" in JSON: no store can hold it
                skipped.append(f"an entry whose url or angle is not valid text: {storable(url[:80])}")
                continue
            aid = self.store.find_article_by_url(url) if len(url) <= 8192 else None
            name = names.get(angle.strip().casefold())
            if aid is None or name is None:
                skipped.append(
                    f"{url[:120]} ({'no such article' if aid is None else 'no such angle: ' + angle[:60]})"
                )
                continue
            rows.append((aid, name, VERDICTS[verdict] or 0))
        if rows:
            self.store.feedback.set_many(rows, now=datetime.now(UTC))
            self._relabel_after_feedback(sorted({r[0] for r in rows}), None)
        return FeedbackImport(len(rows), skipped)

    def reload_feedback(self) -> None:
        """Rebuild the labeller's feedback model from the stored verdicts (after writing many
        at once through the store); labels change as articles are labelled again."""
        labeler = self.labeler
        self._install_feedback(labeler)

    def _angle_name(self, angle: str) -> str:
        names = {a.name.casefold(): a.name for a in self.angles()}
        found = names.get(" ".join(angle.split()).casefold())
        if found is None:
            known = ", ".join(names.values())
            raise EngfeedError(f"no such angle: {terminal_safe(angle)[:80]} (the angles are: {known})")
        return found

    def _install_feedback(self, labeler: AngleLabeler) -> None:
        """Build the feedback model from the stored verdicts and give it to ``labeler``, unless
        another thread meanwhile installed one built at a later serial (the serial is read
        before the rows: a model is never older than its serial)."""
        version = self.store.feedback.version()
        model = self._feedback_model(labeler)
        with self._feedback_lock:
            if self._feedback_version is None or version >= self._feedback_version:
                labeler.feedback = model
                self._feedback_version = version

    def _feedback_model(self, labeler: AngleLabeler) -> FeedbackModel:
        rows = [(r.article_id, r.angle, r.verdict) for r in self.store.feedback.all()]
        vectors = self._stored_vectors([r[0] for r in rows]) if rows else {}
        return FeedbackModel.build([a.name for a in labeler.angles], rows, vectors)

    def _stored_vectors(self, ids: Sequence[int]) -> dict[int, Any]:
        """The stored document vectors of these articles (those that have one of the current
        model), each as a float32 row; {} without embeddings."""
        if self.embedder is None or not ids:
            return {}
        from engfeed.embed import stack_blobs

        dim = self.labeler.prototypes.dim
        blobs = self.store.vectors.of(self.embedder.name, ids)
        return {aid: stack_blobs([b], dim)[0] for aid, b in blobs.items() if len(b) == 2 * dim}

    def _relabel_after_feedback(self, article_ids: Sequence[int], uid: str | None) -> AngleFeedbackResult:
        """Rebuild the feedback model, then re-label these articles and their neighbours.

        Not under the index lock: an embedding run can hold it for minutes, and a verdict must
        answer at once. The labeller reads its feedback model when it labels, so a run in
        progress uses the new model for what it labels next."""
        labeler = self.labeler
        self._install_feedback(labeler)
        affected = set(article_ids)
        model = self.embedder.name if self.embedder is not None else None
        if model is not None:
            from engfeed.embed import stack_blobs

            dim = labeler.prototypes.dim
            ids, blobs = self.store.vectors.load(model)
            keep = [i for i, b in enumerate(blobs) if len(b) == 2 * dim]
            ids = [ids[i] for i in keep]
            matrix = stack_blobs([blobs[i] for i in keep], dim)
            row = {aid: r for r, aid in enumerate(ids)}
            for aid in article_ids:
                if aid in row:
                    affected.update(neighbours(matrix[row[aid]], ids, matrix))
        others = sorted(affected - set(article_ids))
        before = {a.id: a.angles for a in self.store.articles_by_ids(others).values()}
        labeler.label_ids(self.store, sorted(affected), model)
        after = {a.id: a.angles for a in self.store.articles_by_ids(others).values()}
        changed = sum(1 for aid in others if before.get(aid) != after.get(aid))
        article = self.resolve([uid])[0] if uid is not None else None
        return AngleFeedbackResult(article, len(others), changed)

    # -- mute rules (engfeed.rules) ----------------------------------------------------------
    def mute_rules(self) -> list[MuteRule]:
        """The reader's mute rules, oldest first, with how many articles each hides now."""
        return self.store.mutes.rules()

    def check_mute(self, kind: str, value: str) -> MuteRule:
        """The rule normalised and checked, or :class:`RuleError` saying what is wrong: an unknown
        source or angle, a bad or risky pattern, a rule that already exists."""
        rule = check_rule(kind, value)
        if kind == "source":
            names = {n.casefold(): n for n in [s.name for s in self.store.sources()]}
            names.update({n.casefold(): n for n, _ in self.store.source_counts()})
            found = names.get(rule.value.casefold())
            if found is None:
                raise RuleError(f"no such source: {terminal_safe(rule.value)} (see `engfeed sources list`)")
            rule = replace(rule, value=found)
        elif kind == "angle":
            angles = {a.name.casefold(): a.name for a in self.angles()}
            found = angles.get(rule.value.casefold())
            if found is None:
                known = ", ".join(angles.values())
                raise RuleError(f"no such angle: {terminal_safe(rule.value)} (the angles are: {known})")
            rule = replace(rule, value=found)
        existing = self.store.mutes.find(rule.kind, rule.value)
        if existing is not None:
            raise RuleError(f"that rule exists already (rule {existing.id}: {existing.describe()})")
        return rule

    def preview_mute(self, kind: str, value: str, *, examples: int = 5) -> MutePreview:
        """How many stored articles the rule would hide, and the newest few; saves nothing."""
        rule = self.check_mute(kind, value)
        matcher = _single_matcher(rule)
        hidden, ids = self.store.mutes.preview(rule, matcher, examples=examples)
        return self._mute_preview(rule, hidden, ids)

    def add_mute(self, kind: str, value: str, *, examples: int = 5) -> MutePreview:
        """Save a rule; it applies at once to the stored articles and to new ones on arrival."""
        rule = self.check_mute(kind, value)
        if self.store.mutes.count() >= MAX_RULES:
            raise RuleError(f"at most {MAX_RULES} rules; remove one first (`engfeed mute list`)")
        now = datetime.now(UTC)
        rule_id = self.store.mutes.add(rule, _single_matcher(rule), now=now)
        hidden, ids = self.store.mutes.hidden_by(rule_id, examples=examples)
        return self._mute_preview(replace(rule, id=rule_id, created=now, hidden=hidden), hidden, ids)

    def _mute_preview(self, rule: MuteRule, hidden: int, ids: list[int]) -> MutePreview:
        found = self.store.articles_by_ids(ids)
        total = self.count(ArticleFilter(include_muted=True))
        return MutePreview(rule, hidden, total, tuple(found[i] for i in ids if i in found))

    def remove_mute(self, rule_id: int) -> MuteRule:
        """Delete a rule; what it hid shows again. :class:`EngfeedError` when there is no such rule."""
        rule = self.store.mutes.rule(rule_id)
        if rule is None or not self.store.mutes.remove(rule_id):
            raise EngfeedError(f"no such rule: {rule_id} (see `engfeed mute list`)")
        return rule

    def has_mute_rules(self) -> bool:
        return self.store.mutes.active()

    def hidden_count(self, flt: ArticleFilter = ArticleFilter()) -> int:
        """How many articles of this view the reader's rules hide (0 when showing them)."""
        if flt.include_muted or not self.store.mutes.active():
            return 0
        return self.count(replace(flt, include_muted=True)) - self.count(flt)

    def _match_mutes(self) -> None:
        """Match the term and regex rules against the articles stored or changed since last time
        (at most ``ARRIVAL_BUDGET`` seconds of regex work per call; the rest waits for the next)."""
        self.store.mutes.match_pending(self._mute_matcher)

    def _mute_matcher(self, rules: list[MuteRule]) -> Callable[[str, str], list[int] | None]:
        """The compiled matcher of these term and regex rules (kept while the rules stay)."""
        key = tuple((r.id, r.kind, r.value) for r in rules)
        cached = self._matcher
        if cached is None or cached[0] != key:
            cached = self._matcher = (key, TextMatcher(rules, budget_s=ARRIVAL_BUDGET))
        matcher = cached[1]
        matcher.restart()
        return matcher.match

    # -- digest (engfeed.digest) -----------------------------------------------------------
    def digest(
        self, *, days: int = 7, end: datetime | None = None, base_url: str = "", limit: int = MAX_ENTRIES
    ) -> Digest:
        """The best new articles of the ``days`` before ``end`` (default now), grouped by angle;
        muted articles are left out, saved ones marked."""
        end = end or datetime.now(UTC)
        return self.digest_between(end - timedelta(days=days), end, base_url=base_url, limit=limit)

    def digest_between(
        self, start: datetime, end: datetime, *, base_url: str = "", limit: int = MAX_ENTRIES
    ) -> Digest:
        flt = ArticleFilter(since=start, until=end)
        articles = self.store.list_articles(flt, limit=DIGEST_CANDIDATES)
        overviews = {
            uid: str(data.get("overview") or "") for uid, data in self.stored_summaries(articles).items()
        }
        groups = select_digest(
            articles,
            angle_order=[a.name for a in self.angles()],
            overviews=overviews,
            limit=limit,
            strength=self.labeler.strength,
        )
        return Digest(start.astimezone(UTC), end.astimezone(UTC), groups, self.count(flt), base_url)

    def send_digest(
        self,
        settings: DigestSettings | None = None,
        *,
        days: int = 7,
        force: bool = False,
        scheduled: bool = False,
        now: datetime | None = None,
    ) -> DigestSendReport:
        """Mail the digest of the last ``days`` to ``ENGFEED_DIGEST_TO``, at most once per ISO
        week (``force`` sends again). Nothing new: not sent. ``scheduled`` (serve's weekly
        send) skips the addresses that unsubscribed; a send asked for by hand re-subscribes
        them. Raises :class:`ConfigError` when mail is not configured and
        :class:`~engfeed.digest.DigestError` when no message could be delivered."""
        settings = settings or config.digest_settings()
        if settings.smtp is None or not settings.to:
            raise ConfigError(
                "to send the digest, set ENGFEED_SMTP_URL and ENGFEED_DIGEST_TO (README: Digest)"
            )
        now = (now or datetime.now(UTC)).astimezone()
        week = digest_week(now)
        recipients = list(settings.to)
        if scheduled:
            recipients = [r for r in recipients if self.store.digests.unsubscribed(r) is None]
            if not recipients:
                return DigestSendReport("skipped", week, message="every recipient has unsubscribed")
        digest = self.digest(days=days, end=now, base_url=settings.base_url)
        if digest.total == 0:
            return DigestSendReport("empty", week, message=f"nothing new in the last {days} days: not sent")
        if not self.store.digests.claim(week, ", ".join(recipients), now=now, force=force):
            prev = self.store.digests.sent(week)
            when = f" on {prev.sent_at.astimezone():%a %-d %b %H:%M} to {prev.recipient}" if prev else ""
            state = "being sent (or a send was interrupted)" if prev and prev.articles < 0 else "already sent"
            return DigestSendReport(
                "skipped", week, message=f"{state} this week ({week}){when}; --force sends it again"
            )
        sent: list[str] = []
        errors: list[str] = []
        try:
            for recipient in recipients:
                url = self.unsubscribe_url(settings.base_url, recipient)
                try:
                    send_mail(
                        message(digest, settings, recipient, unsubscribe_url=url, now=now), settings.smtp
                    )
                except DigestError as exc:
                    errors.append(str(exc))
                    continue
                sent.append(recipient)
                if not scheduled:
                    self.store.digests.set_subscribed(recipient, True, now=now)
        finally:
            if not sent:  # nothing left: the week stays free, whatever stopped the sending
                self.store.digests.release(week)
        if not sent:
            raise DigestError(errors[0] if errors else "the digest was not sent")
        self.store.digests.confirm(week, ", ".join(sent), digest.shown, now=now)
        return DigestSendReport("sent", week, tuple(sent), digest.shown, "; ".join(errors))

    def send_digest_if_due(
        self, settings: DigestSettings, *, now: datetime | None = None
    ) -> DigestSendReport | None:
        """``serve``'s weekly send: when mail is configured, from ``ENGFEED_DIGEST_DAY`` at
        ``ENGFEED_DIGEST_HOUR`` (local time) on, once per ISO week; None when not due."""
        now = (now or datetime.now(UTC)).astimezone()
        if not settings.can_send or not digest_due(now, day=settings.day, hour=settings.hour):
            return None
        if self.store.digests.sent(digest_week(now)) is not None:
            return None
        return self.send_digest(settings, scheduled=True, now=now)

    def last_digest_send(self) -> DigestSend | None:
        """The most recent digest mailed (or being mailed), if any."""
        return self.store.digests.last()

    def unsubscribe_url(self, base_url: str, address: str) -> str:
        """The one-click unsubscribe link for ``address`` ('' when the page's address is unknown)."""
        if not base_url:
            return ""
        token = unsubscribe_token(self._digest_secret(), address)
        return f"{base_url}/digest/unsubscribe?{urlencode({'address': address, 'token': token})}"

    def unsubscribe(self, address: str, token: str) -> bool:
        """Stop the weekly digest for ``address`` when ``token`` is its unsubscribe token."""
        if not address or len(address) > 320 or not check_token(self._digest_secret(), address, token):
            return False
        self.store.digests.set_subscribed(address.strip(), False, now=datetime.now(UTC))
        return True

    def _digest_secret(self) -> str:
        return self.store.get_meta(_DIGEST_SECRET) or self.store.meta_default(
            _DIGEST_SECRET, secrets.token_hex(32)
        )

    def web_secret(self) -> bytes:
        """The key that signs the web forms' CSRF tokens: one per store, so every web
        process on it (``serve --workers``, several machines) accepts the others' forms."""
        stored = self.store.get_meta(_WEB_SECRET) or self.store.meta_default(
            _WEB_SECRET, secrets.token_hex(32)
        )
        return bytes.fromhex(stored)

    # -- web layer support (engfeed.web) -------------------------------------------------
    def change_token(self) -> tuple[int, int]:
        """Moves whenever the store changes (a commit from any connection); costs microseconds.

        The web app keys its caches (sidebar counts, listing totals) on it. Call it from the
        thread whose view matters: the marker is per connection, and connections are per thread.
        """
        return self.store.change_marker()

    def articles_page(
        self, flt: ArticleFilter = ArticleFilter(), *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Article], str | None]:
        """:meth:`articles` without the total: (page, next cursor); the caller caches totals."""
        before = decode_cursor(cursor) if cursor else None
        items = self.store.list_articles(flt, limit=limit + 1, before=before)
        more = len(items) > limit
        items = items[:limit]
        return items, (encode_cursor(items[-1]) if more and items else None)


#: The most new articles a digest chooses from (a week of the bundled sources is ~100).
DIGEST_CANDIDATES = 2000
_WEB_SECRET = "web.csrf_secret"
_DIGEST_SECRET = "digest.secret"  # meta key: signs unsubscribe links


@dataclass(frozen=True, slots=True)
class DigestSendReport:
    """What ``digest --send`` (or serve's weekly send) did."""

    status: str  # "sent", "skipped" (this week's is sent, or nobody is subscribed), "empty"
    week: str
    recipients: tuple[str, ...] = ()
    articles: int = 0
    message: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "week": self.week,
            "recipients": list(self.recipients),
            "articles": self.articles,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class _EmbedRun:
    started: float  # time.monotonic()
    done: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class SearchCoverage:
    """Concept search's reach: articles with a vector, of all stored (see Feed.search_coverage)."""

    embedded: int
    total: int
    eta_s: float | None = None  # while this process embeds the rest
    enabled: bool = True  # False: embeddings are off (ENGFEED_EMBED=0), keyword search only

    @property
    def partial(self) -> bool:
        return self.enabled and self.embedded < self.total

    def to_json(self) -> dict[str, object]:
        eta = None if self.eta_s is None else round(self.eta_s)
        return {
            "embedded": self.embedded,
            "articles": self.total,
            "eta_seconds": eta,
            "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True)
class AngleFeedbackResult:
    """What a verdict did: the article as now labelled, and its re-labelled neighbours."""

    article: Article | None
    relabelled: int  # similar articles labelled again
    changed: int  # of those, how many now show other angles

    def to_json(self) -> dict[str, object]:
        data = self.article.to_json() if self.article else {}
        data.update({"relabelled": self.relabelled, "changed": self.changed})
        return data


@dataclass(frozen=True, slots=True)
class FeedbackImport:
    recorded: int
    skipped: list[str]

    def to_json(self) -> dict[str, object]:
        return {"recorded": self.recorded, "skipped": self.skipped}


READING_LIST_SOURCE = "Reading list"
_LIST_TITLE = "reading_list.title"  # meta keys: the last imported list's front matter
_LIST_TAGS = "reading_list.tags"


@dataclass(frozen=True, slots=True)
class ReadingListImport:
    """What ``reading-list import`` did."""

    matched: int  # entries found among stored articles
    created: int  # link-only articles made for the rest
    skipped: list[str]  # bullets that were not usable links

    def to_json(self) -> dict[str, object]:
        return {"matched": self.matched, "created": self.created, "skipped": self.skipped}


def reading_list_json(article: Article) -> dict[str, object]:
    """A ``reading-list --json`` item: the ``list --json`` fields plus ``saved_at``."""
    data = article.to_json()
    data["saved_at"] = iso(article.saved_at) if article.saved_at else None
    return data


def _list_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past the last representable moment
        return None


def _single_matcher(rule: MuteRule) -> Callable[[str, str], list[int] | None] | None:
    """A strict matcher for one term or regex rule being added or previewed (None for the
    kinds matched in SQL): slow on the stored articles, it raises :class:`RuleError`."""
    if rule.kind not in ("term", "regex"):
        return None
    return TextMatcher([replace(rule, id=rule.id or 0)], strict=True).match


def check_feed_url(url: str) -> None:
    """Only absolute http(s) URLs with a host can be sources (no ``file:``, ``javascript:``...)."""
    shown = redact_credentials(terminal_safe(url))[:200]
    if not url.lower().startswith(("http://", "https://")):
        raise EngfeedError(f"not an http(s) URL: {shown!r}")
    if len(url) > MAX_FEED_URL:  # PostgreSQL's unique index holds ~2,700 bytes a key
        raise EngfeedError(f"the feed URL is {len(url):,} characters; at most {MAX_FEED_URL:,}: {shown!r}")
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        raise EngfeedError(f"not a valid feed URL (no host): {shown!r}")


def encode_cursor(article: Article) -> str:
    return f"{int(article.published.timestamp())}.{article.id}"


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``PUBLISHED.ROWID`` as two integers a database column holds (64-bit), else EngfeedError."""
    try:
        published, _, rowid = cursor.partition(".")
        position = int(published), int(rowid)
    except ValueError as exc:
        raise EngfeedError(f"bad page cursor: {cursor[:40]!r}") from exc
    if not all(-(2**63) <= n < 2**63 for n in position):
        raise EngfeedError(f"bad page cursor: {cursor[:40]!r} (out of range)")
    return position


def _stage(progress: ProgressFn | None, stage: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def _path_text(path: str | Path) -> str:
    """A file name as text to store or print: bytes of it that are not UTF-8 become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def _expand(paths: Iterable[str | Path]) -> Iterable[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FEED_SUFFIXES)
        else:
            yield path
