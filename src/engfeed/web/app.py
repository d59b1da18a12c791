"""The Engineering Feed web app: server-rendered pages, a JSON API and output feeds.

Everything goes through the :class:`~engfeed.feed.Feed` facade; this module never speaks
SQL. Fast reads (a keyset page, one article, cached counts) run inline in ``async``
handlers, because a thread hop per request costs more than the query (see the serving
numbers in ``perf-baselines.md``); slow ones (search, with its query embedding; related
articles; the sources table) run on a small, bounded thread pool.

Routes::

    GET  /                       the feed (recency) or, with ?q=, concept search results
    GET  /a/{uid}                one article: sanitised content, angles, related articles
    GET  /sources                sources with health and failure hints; "Refresh now"
    POST /refresh                start a refresh (CSRF-protected), 303 back to /sources
    GET  /feed.atom, /feed.json  any view (q, source, angle, since, until) as a feed
    GET  /rules, /digest, ...    mute rules and the digest (engfeed.web.mutes, engfeed.web.digest)
    GET  /api/...                JSON API, described by /openapi.json and /docs
    GET  /healthz                health for load balancers: the database and the background work
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from engfeed import config
from engfeed.errors import ConfigError, EngfeedError, StoreError, Unavailable
from engfeed.feed import Feed, IngestReport, decode_cursor, encode_cursor
from engfeed.models import Article, ArticleFilter, DatabaseHealth, SearchHit, Source
from engfeed.readinglist import MAX_LIST_BYTES, NoteNotText, NoteTooLarge
from engfeed.summarize import note_from
from engfeed.text import clean_text
from engfeed.web.angles import AnglePages
from engfeed.web.cache import TokenCache
from engfeed.web.digest import DigestPages
from engfeed.web.feeds import FeedItem, FeedMeta, atom_feed, json_feed
from engfeed.web.hints import due_now, failure_hint, health
from engfeed.web.mutes import RulePages
from engfeed.web.openapi import openapi_document
from engfeed.web.params import BadParam, View, local_path, parse_limit
from engfeed.web.refresh import Refresher
from engfeed.web.render import STATIC, body_html, make_env, mark_html, note_html, plural, safe_url
from engfeed.web.responses import JSONResponse, json_error, json_object
from engfeed.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    AllowedHostsMiddleware,
    Csrf,
    SecurityHeadersMiddleware,
    same_origin,
)

if TYPE_CHECKING:
    from engfeed.angles import Angle

log = logging.getLogger("engfeed.web")

T = TypeVar("T")

TITLE = "Engineering Feed"
TAGLINE = "A curated reading feed of engineering blogs — from teams building real systems at scale."
RECENCY_NOTE = "Ranked by recency by default. Add a concept query to surface related context."
SEARCH_NOTE = (
    "Ranked by relevance to your query: keyword (BM25) and meaning (dense) matches, fused, "
    "with a nudge toward recent articles."
)
PAGE_SIZE = 30
PAGE_CACHE_ENTRIES = 256
MAX_CACHED_BODY = 512 * 1024  # bytes; 256 pages stay well under 100 MB
SEARCH_TTL = 300.0  # search ranking has a recency prior: cached results age out
SEARCH_SIZE = 20
SEARCH_MAX = 100
FEED_SIZE = 50
RELATED_SIZE = 5
HEALTH_TTL_S = 1.0  # /healthz asks the database at most once a second (load balancers poll)
DIGEST_CHECK_S = 600.0  # serve checks every 10 minutes whether the weekly digest is due
HIDDEN_SLACK = 20  # extra search results fetched so that muted ones can be dropped
TOP_COMPANIES = 12
MAX_UID = 200
STALE_TOKEN = "The form's security token is missing or stale. Reload the page."
CSRF_PLACEHOLDER = "__engfeed_csrf_token__"
CSRF_PLACEHOLDER_BYTES = CSRF_PLACEHOLDER.encode()
STATE_MESSAGES = {
    "saved": "Saved to your reading list.",
    "unsaved": "Removed from your reading list.",
    "read": "Marked as read.",
    "unread": "Marked as unread.",
    "note": "Note saved.",
    "angle-added": "Angle added. Similar articles were labelled again.",
    "angle-removed": "Angle removed. Similar articles were labelled again.",
    "angle-cleared": "Your verdict on that angle is forgotten.",
}
MAX_STATE_BODY = 1024 * 1024  # a 100 KB note is at most ~600 KB as escaped JSON
REFRESH_MESSAGES = {
    "started": "Refresh started. Sources update as each one finishes; reload this page to see their health.",
    "running": "A refresh is already running, so no new one was started.",
}


# -- view models ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Card:
    """One result card: an article, its links worked out once, and search evidence if any."""

    article: Article
    link: str  # the original article, http(s) only; "" when the feed gave nothing safe
    page_href: str  # this app's page for the article
    company_href: str | None = None  # the view narrowed (or widened) by this card's company
    angle_line: tuple[str, str] | None = None  # ("systems performance", "latency, p99")
    context: str = ""
    why: dict[str, float | int | None] = field(default_factory=dict)
    score: float | None = None


def make_card(
    article: Article,
    *,
    view: View | None = None,
    memo: dict[str, str] | None = None,
    hit: SearchHit | None = None,
) -> Card:
    """A :class:`Card`; ``memo`` shares the company links between the cards of one page."""
    company_href = None
    if view is not None:
        memo = {} if memo is None else memo
        company_href = memo.get(article.source)
        if company_href is None:
            company_href = memo[article.source] = view.toggle_source(article.source).url()
    angle_line = None
    if article.angles:
        first = article.angles[0]
        angle_line = (first.name, ", ".join(first.terms))
    return Card(
        article=article,
        link=safe_url(article.url),
        page_href="/a/" + quote(article.uid, safe=""),
        company_href=company_href,
        angle_line=angle_line,
        context=hit.context if hit else "",
        why=hit.why.to_json() if hit else {},
        score=hit.score if hit else None,
    )


def make_cards(
    view: View | None, articles: Sequence[Article] = (), hits: Sequence[SearchHit] = ()
) -> list[Card]:
    memo: dict[str, str] = {}
    if hits:
        return [make_card(h.article, view=view, memo=memo, hit=h) for h in hits]
    return [make_card(a, view=view, memo=memo) for a in articles]


@dataclass(frozen=True, slots=True)
class FilterLink:
    name: str
    count: int
    href: str
    active: bool
    description: str = ""


@dataclass(frozen=True, slots=True)
class Chip:
    label: str
    remove_href: str
    kind: str


@dataclass(frozen=True, slots=True)
class SourceRow:
    source: Source
    health: str
    hint: str | None
    due: bool


@dataclass(frozen=True, slots=True)
class CachedResponse:
    body: bytes
    content_type: str

    def response(self) -> Response:
        return Response(self.body, headers={"content-type": self.content_type})


def view_or_error(params: QueryParams, *, default_limit: int, max_limit: int) -> tuple[View, BadParam | None]:
    """Parse the view; on a bad parameter drop it and say so (the page stays usable)."""
    items = list(params.multi_items())
    first_error: BadParam | None = None
    for _ in range(10):
        try:
            view = View.from_query(QueryParams(items), default_limit=default_limit, max_limit=max_limit)
            return view, first_error
        except BadParam as exc:
            first_error = first_error or exc
            bad = {exc.name, "since", "until"} if exc.name == "until" else {exc.name}
            items = [(k, v) for k, v in items if k not in bad]
    return View(limit=default_limit), first_error


# -- the site ------------------------------------------------------------------------------
class Site:
    """Request handlers over one :class:`Feed`; holds the caches and the refresher."""

    def __init__(
        self, feed: Feed, *, refresher: Refresher, csrf: Csrf, search_threads: int = 4, queued: bool = False
    ) -> None:
        self.feed = feed
        self.refresher = refresher
        self.queued = queued  # engfeed worker processes do the background work, not this one
        self.csrf = csrf
        self.env = make_env()
        self.cache = TokenCache(feed.change_token)  # counts, totals, sidebar links, sources
        self.pages = TokenCache(feed.change_token, max_entries=PAGE_CACHE_ENTRIES)  # whole responses
        self._search_threads = search_threads
        self._limiter: anyio.CapacityLimiter | None = None
        self._health: tuple[float, DatabaseHealth] | None = None
        self._angles: list[Angle] | None = None

    # -- data helpers ----------------------------------------------------------------------
    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._search_threads)
        return self._limiter

    def sync(self) -> Hashable:
        """Read the store's change token once per request; stale cache entries go."""
        token = self.cache.check()
        self.pages.check(token)
        return token

    async def cached(
        self,
        request: Request,
        key: Hashable,
        make: Callable[[], Awaitable[Response]],
        *,
        ttl: float | None = None,
    ) -> Response:
        """A whole 200 response from the page cache, else ``make()``'s (stored if it is a 200)."""
        token = self.sync()
        found = self.pages.lookup(key)
        if isinstance(found, CachedResponse):
            return self.personal(request, found.response())
        response = await make()
        if (
            response.status_code == 200
            and len(response.body) <= MAX_CACHED_BODY
            and not response.headers.get("set-cookie")
        ):
            entry = CachedResponse(bytes(response.body), response.headers.get("content-type", ""))
            self.pages.store(key, entry, ttl=ttl, token=token)
        return self.personal(request, response)

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run blocking work (the store, search) on a worker thread, at most ``limiter``
        at once; the thread's pooled database connection goes back when it is done."""

        def run() -> T:
            try:
                return fn()
            finally:
                self.feed.release_connection()

        return await anyio.to_thread.run_sync(run, limiter=self.limiter)

    def source_counts(self) -> list[tuple[str, int]]:
        return self.cache.get(("source_counts",), self.feed.source_counts)

    def angle_counts(self) -> list[tuple[str, int]]:
        return self.cache.get(("angle_counts",), self.feed.angle_counts)

    def total(self, flt: ArticleFilter) -> int:
        return self.cache.get(("count", flt), partial(self.feed.count, flt))

    def angle_defs(self) -> list[Angle]:
        """The configured angles (names, descriptions); loaded once."""
        if self._angles is None:
            try:
                self._angles = self.feed.angles()
            except EngfeedError as exc:
                log.warning("cannot load angles: %s", exc)
                self._angles = []
        return self._angles

    async def sources(self) -> list[Source]:
        """Every source with health; cached (the per-source article count is a scan)."""
        self.cache.check()
        return await self.in_thread(partial(self.cache.get, ("sources",), self.feed.sources))

    async def search(self, view: View, limit: int) -> list[SearchHit]:
        return await self.in_thread(partial(self.feed.search, view.q, view.filter, limit=limit))

    async def search_page(self, view: View) -> tuple[list[SearchHit], int]:
        """The page's search: hits, and how many of the best ones the reader's mute rules hid.

        With rules, one search includes muted articles and drops them here, so the page can
        say "N hidden by your rules" without a second search."""
        if view.include_muted or not self.cache.get(("mutes_active",), self.feed.has_mute_rules):
            return await self.search(view, view.limit), 0
        wider = replace(view, include_muted=True)
        hits = await self.in_thread(
            partial(self.feed.search, view.q, wider.filter, limit=view.limit + HIDDEN_SLACK)
        )
        kept = [h for h in hits if not h.article.muted][: view.limit]
        cut = hits.index(kept[-1]) + 1 if kept else len(hits)
        return kept, sum(1 for h in hits[:cut] if h.article.muted)

    async def related(self, uid: str, limit: int) -> list[SearchHit]:
        try:
            return await self.in_thread(partial(self.feed.related, uid, limit=limit))
        except EngfeedError as exc:
            log.info("no related articles for %s: %s", uid, exc)
            return []

    # -- rendering -------------------------------------------------------------------------
    def render(self, request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        """A page. Its forms carry :data:`CSRF_PLACEHOLDER`, which :meth:`personal` swaps for
        the visitor's token: pages stay cacheable although every visitor's token differs."""
        context.setdefault("csrf_token", CSRF_PLACEHOLDER)
        context.setdefault("angle_names", [a.name for a in self.angle_defs()])
        # Where a form on this page sends the reader back (without JavaScript).
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("partial", "done")]
        context.setdefault("return_to", request.url.path + (f"?{urlencode(kept)}" if kept else ""))
        # What the form the reader just used did (a redirect back here carries "done=...").
        context.setdefault("state_message", STATE_MESSAGES.get(request.query_params.get("done") or ""))
        html = self.env.get_template(template).render(
            path=request.url.path,
            title=TITLE,
            tagline=TAGLINE,
            config_warning=self.feed.angles_warning,
            csrf_field=CSRF_FIELD,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def personal(self, request: Request, response: Response) -> Response:
        """``response`` with this visitor's CSRF token in its forms (and the cookie that goes
        with it, the first time)."""
        body = bytes(response.body)
        if CSRF_PLACEHOLDER_BYTES not in body:
            return response
        nonce, fresh = self.csrf.nonce_for(request)
        body = body.replace(CSRF_PLACEHOLDER_BYTES, self.csrf.sign(nonce).encode())
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length",)}
        out = Response(body, status_code=response.status_code, headers=headers)
        if fresh:
            self.set_csrf_cookie(request, out, nonce)
        return out

    @staticmethod
    def set_csrf_cookie(request: Request, response: Response, nonce: str) -> None:
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def error_page(self, request: Request, status: int, heading: str, message: str) -> HTMLResponse:
        return self.render(request, "error.html", status=status, heading=heading, message=message)

    def filter_links(self, view: View) -> tuple[list[FilterLink], list[FilterLink]]:
        key = ("filters", view.q, view.sources, view.angle, view.since, view.until)
        return self.cache.get(key, partial(self._filter_links, view))

    def _filter_links(self, view: View) -> tuple[list[FilterLink], list[FilterLink]]:
        companies = [
            FilterLink(name, count, view.toggle_source(name).url(), view.has_source(name))
            for name, count in self.source_counts()
        ]
        described = {a.name.lower(): a.description for a in self.angle_defs()}
        angles: list[FilterLink] = []
        for name, count in self.angle_counts():
            active = (view.angle or "").lower() == name.lower()
            target = replace(view, angle=None if active else name, cursor=None)
            angles.append(FilterLink(name, count, target.url(), active, described.get(name.lower(), "")))
        return companies, angles

    @staticmethod
    def chips(view: View) -> list[Chip]:
        out = [Chip(s, view.toggle_source(s).url(), "company") for s in view.sources]
        if view.angle:
            out.append(Chip(f"angle: {view.angle}", replace(view, angle=None, cursor=None).url(), "angle"))
        if view.since:
            since_url = replace(view, since=None, cursor=None).url()
            out.append(Chip(f"from {view.since:%Y-%m-%d}", since_url, "since"))
        if view.until:
            out.append(
                Chip(f"before {view.until:%Y-%m-%d}", replace(view, until=None, cursor=None).url(), "until")
            )
        if view.show:
            out.append(Chip(f"{view.show} only", replace(view, show="", cursor=None).url(), "show"))
        if view.include_muted:
            out.append(Chip("with muted", replace(view, include_muted=False, cursor=None).url(), "muted"))
        return out

    # -- pages -----------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        params = request.query_params
        searching = bool(clean_text(params.get("q") or "", 300))
        view, bad = view_or_error(
            params,
            default_limit=SEARCH_SIZE if searching else PAGE_SIZE,
            max_limit=SEARCH_MAX,
        )
        fragment = params.get("partial") == "1"
        if bad:
            notice = f"Ignored an invalid filter ({bad.message})."
            self.sync()
            return self.personal(
                request, await self._home(request, view, fragment, notice=notice, status=400)
            )
        done = params.get("done") or ""  # the message a form returning here shows
        return await self.cached(
            request,
            ("home", view, fragment, done if done in STATE_MESSAGES else ""),
            partial(self._home, request, view, fragment),
            ttl=SEARCH_TTL if view.q else None,
        )

    async def _home(
        self, request: Request, view: View, fragment: bool, *, notice: str | None = None, status: int = 200
    ) -> Response:
        cards: list[Card]
        next_url: str | None = None
        total = 0
        hidden = 0
        if view.q:
            try:
                hits, hidden = await self.search_page(view)
            except EngfeedError as exc:
                hits, notice, status = [], f"Search failed: {exc}", 400
            cards = make_cards(view, hits=hits)
            total = len(cards)
            if len(cards) >= view.limit and view.limit < SEARCH_MAX:
                more = min(SEARCH_MAX, view.limit + SEARCH_SIZE)
                next_url = view.url(extra=[("limit", str(more))])
        else:
            try:
                articles, cursor = self.feed.articles_page(view.filter, limit=view.limit, cursor=view.cursor)
            except EngfeedError as exc:
                articles, cursor, notice, status = [], None, str(exc), 400
            cards = make_cards(view, articles)
            total = self.total(view.filter)
            if not view.include_muted:
                hidden = self.cache.get(("hidden", view.filter), partial(self.feed.hidden_count, view.filter))
            if cursor:
                extra = [("limit", str(view.limit))] if view.limit != PAGE_SIZE else []
                next_url = replace(view, cursor=cursor).url(page=True, extra=extra)
        context = {
            "view": view,
            "cards": cards,
            "total": total,
            "next_url": next_url,
            "notice": notice,
            "chips": self.chips(view),
            "clear_url": View(q=view.q).url(),
            "newest_url": replace(view, cursor=None).url() if view.cursor else None,
            "last_cursor": encode_cursor(cards[-1].article) if cards and not view.q else "",
            "note": SEARCH_NOTE if view.q else RECENCY_NOTE,
            "hidden": hidden,
            "coverage": self.cache.get(("coverage",), self.feed.search_coverage),
            "muted_toggle_url": replace(view, include_muted=not view.include_muted, cursor=None).url(),
            "feeds": {
                "atom": view.url("/feed.atom"),
                "json": view.url("/feed.json"),
            },
        }
        if fragment:
            return self.render(request, "_results.html", status=status, **context)
        companies, angles = self.filter_links(view)
        return self.render(
            request,
            "index.html",
            status=status,
            show_links=[
                FilterLink(value, 0, replace(view, show=value, cursor=None).url(), view.show == value, label)
                for value, label in (("", "All articles"), ("unread", "Unread"), ("saved", "Saved"))
            ],
            companies=companies,
            top_companies=TOP_COMPANIES,
            angles=angles,
            store_total=self.total(ArticleFilter(include_muted=True)),
            **context,
        )

    async def article_page(self, request: Request) -> Response:
        uid = str(request.path_params["uid"])
        art = self.feed.article(uid) if len(uid) <= MAX_UID else None
        if art is None:
            return self.error_page(request, 404, "Article not found", "No article has this id.")
        if not art.read and opened_here(request) and not request.query_params.get("done"):
            # Opening an article from the page reads it (not a link from another site, which
            # could otherwise mark articles read behind the reader's back; not the page a
            # state form returns to, "done=...", or "Mark unread" would undo itself).
            [art] = self.feed.mark_read([art.uid])
        related = await self.related(uid, RELATED_SIZE)
        described = {a.name.lower(): a.description for a in self.angle_defs()}
        guidelines = {a.name.lower(): a.guideline for a in self.angle_defs() if a.guideline}
        summary = await self.in_thread(partial(self.feed.summary, art))
        try:
            explanations = await self.in_thread(partial(self.feed.explain_angles, art.uid))
        except EngfeedError as exc:  # a broken angles file: the page still shows the article
            log.info("no angle explanation for %s: %s", art.uid, exc)
            explanations = []
        note_text = art.note or ""
        if not note_text and summary.summary is not None and request.query_params.get("note") == "summary":
            note_text = note_from(summary.summary)  # pre-filled; saved only when the reader saves
        page = self.render(
            request,
            "article.html",
            article=art,
            body=body_html(art),
            summary=summary.summary,
            note_text=note_text,
            note_html=note_html(art.note),
            related=make_cards(None, hits=related),
            angle_descriptions=described,
            angle_guidelines=guidelines,
            explanations=explanations,
            source_url=View(sources=(art.source,)).url() if art.source else "/",
        )
        return self.personal(request, page)

    # -- reading state (forms: work without JavaScript; with it, they answer JSON) -----------
    async def state_form(self, request: Request) -> Response:
        """POST /a/{uid}/save|read|note: the page's toggles and note editor."""
        uid = str(request.path_params["uid"])
        action = request.url.path.rsplit("/", 1)[-1]
        try:
            form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_STATE_BODY)
        except Exception:  # malformed or oversized bodies: python-multipart raises assorted errors
            return self.state_error(request, 400, "The form could not be read (is the note over 100 KB?).")
        if not self.csrf.valid(request, form.get(CSRF_FIELD)):
            return self.state_error(request, 403, STALE_TOKEN)
        value = str(form.get("value") or "")
        try:
            if action == "save":
                [art] = self.feed.save([uid]) if value != "0" else self.feed.unsave([uid])
            elif action == "read":
                [art] = self.feed.mark_read([uid], value != "0")
            else:
                note = str(form.get("note") or "").replace("\r\n", "\n")
                art = self.feed.set_note(uid, note if note.strip() else None)
        except NoteTooLarge as exc:
            return self.state_error(request, 413, f"Not saved: {exc}.")
        except NoteNotText as exc:
            return self.state_error(request, 400, f"Not saved: {exc}.")
        except StoreError as exc:  # the store cannot take it (read-only, a server limit): not the id
            return self.state_error(request, 503, f"Not saved: {exc}.")
        except EngfeedError:
            return self.state_error(request, 404, "No article has this id.")
        if wants_json(request):
            return JSONResponse(
                {**art.to_json(), "note_html": str(note_html(art.note)), "read_at": iso_or_none(art.read_at)}
            )
        done = {"save": "saved" if art.saved else "unsaved", "read": "read" if art.read else "unread"}
        target = local_path(str(form.get("next") or "")) or f"/a/{quote(art.uid, safe='')}"
        if action == "note":
            target = f"/a/{quote(art.uid, safe='')}?done=note#note"
        elif target.startswith("/a/"):  # an article page must know (or opening it reads it again)
            target = with_done(target, done[action])
        return RedirectResponse(target, status_code=303)

    def state_error(self, request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return json_error(status, message)
        return self.error_page(request, status, "Not saved", message)

    async def mark_read_above(self, request: Request) -> Response:
        """POST /mark-read: every article of the current view down to the last card shown."""
        try:
            form = await request.form(max_files=0, max_fields=60)
        except Exception:
            return self.error_page(request, 400, "Bad request", "The form could not be read.")
        if not self.csrf.valid(request, form.get(CSRF_FIELD)):
            return self.state_error(request, 403, STALE_TOKEN)
        try:
            view = View.from_query(QueryParams(str(form.get("view") or "")))
            through = decode_cursor(str(form.get("through") or ""))
        except (BadParam, EngfeedError) as exc:
            return self.state_error(request, 400, f"Cannot mark these as read: {exc}")
        count = self.feed.mark_read_through(view.filter, through)
        if wants_json(request):
            return JSONResponse({"marked": count})
        return RedirectResponse(replace(view, cursor=None).url(), status_code=303)

    async def note_preview(self, request: Request) -> Response:
        """POST /preview: a note's Markdown as sanitised HTML (the editor's preview)."""
        try:
            form = await request.form(max_files=0, max_fields=5, max_part_size=MAX_STATE_BODY)
        except Exception:
            return json_error(400, "the form could not be read")
        if not self.csrf.valid(request, form.get(CSRF_FIELD)):
            return json_error(403, "the form's security token is missing or stale")
        return JSONResponse({"html": str(note_html(str(form.get("note") or "")))})

    async def reading_list_page(self, request: Request) -> Response:
        saved = await self.in_thread(self.feed.reading_list)
        cards = make_cards(None, saved)
        imported = request.query_params.get("imported")
        message = None
        if imported and imported.isdigit():
            message = f"Imported {plural(int(imported), 'entry', 'entries')} into your reading list."
            skipped = request.query_params.get("skipped") or ""
            if skipped.isdigit() and int(skipped):
                message += (
                    f" Skipped {plural(int(skipped), 'line')} that {'is' if int(skipped) == 1 else 'are'}"
                    " not a [title](https://...) link (engfeed reading-list import FILE names them)."
                )
        page = self.render(
            request,
            "reading_list.html",
            cards=cards,
            notes={c.article.uid: note_html(c.article.note) for c in cards},
            message=message,
            max_upload_mb=MAX_LIST_BYTES // 1024 // 1024,
        )
        return self.personal(request, page)

    async def reading_list_markdown(self, request: Request) -> Response:
        text = await self.in_thread(self.feed.export_reading_list)
        return Response(
            text,
            media_type="text/markdown; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="reading-list.md"'},
        )

    async def reading_list_import(self, request: Request) -> Response:
        def too_large() -> Response:
            limit = MAX_LIST_BYTES // 1024 // 1024
            return self.error_page(
                request, 413, "File too large", f"A reading list may be at most {limit} MB."
            )

        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_LIST_BYTES + 64 * 1024:
            return too_large()
        try:
            form = await request.form(max_files=1, max_fields=5, max_part_size=MAX_LIST_BYTES)
        except Exception:
            return self.error_page(
                request, 400, "Import failed", "The upload could not be read (is it over 10 MB?)."
            )
        if not self.csrf.valid(request, form.get(CSRF_FIELD)):
            return self.error_page(
                request,
                403,
                "Import refused",
                STALE_TOKEN,
            )
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return self.error_page(request, 400, "Import failed", "Choose a Markdown file to import.")
        data = await upload.read(MAX_LIST_BYTES + 1)
        if len(data) > MAX_LIST_BYTES:
            return too_large()
        try:
            report = await self.in_thread(
                partial(self.feed.import_reading_list, data.decode("utf-8", "replace"))
            )
        except EngfeedError as exc:
            return self.error_page(request, 400, "Import failed", str(exc))
        done = f"imported={report.matched + report.created}"
        if report.skipped:
            done += f"&skipped={len(report.skipped)}"
        return RedirectResponse(f"/reading-list?{done}", status_code=303)

    async def sources_page(self, request: Request) -> Response:
        rows = [SourceRow(s, health(s), failure_hint(s), due_now(s)) for s in await self.sources()]
        nonce, fresh = self.csrf.nonce_for(request)
        message = REFRESH_MESSAGES.get(request.query_params.get("refresh") or "")
        kinds = ("ok", "failing", "never fetched", "pending")
        summary = {key: sum(1 for r in rows if r.health == key) for key in kinds}
        queue = await self.in_thread(self.feed.queue_state) if self.queued else None
        response = self.render(
            request,
            "sources.html",
            rows=rows,
            summary=summary,
            message=message,
            csrf_token=self.csrf.sign(nonce),
            refresher=self.refresher,
            queue=queue,
        )
        if fresh:
            self.set_csrf_cookie(request, response, nonce)
        return response

    async def refresh(self, request: Request) -> Response:
        try:
            form = await request.form(max_files=0, max_fields=20)
        except Exception:  # malformed bodies: python-multipart raises assorted errors
            return self.error_page(request, 400, "Bad request", "The form could not be read.")
        token = form.get(CSRF_FIELD)
        if not self.csrf.valid(request, token):
            return self.error_page(
                request,
                403,
                "Refresh refused",
                "The form's security token is missing or stale. Reload the Sources page and try again.",
            )
        started = self.refresher.trigger(only_due=False)
        return RedirectResponse(f"/sources?refresh={'started' if started else 'running'}", status_code=303)

    async def docs(self, request: Request) -> Response:
        return self.render(request, "docs.html", doc=openapi_document())

    # -- output feeds ----------------------------------------------------------------------
    async def feed_items(self, view: View, base: str) -> list[FeedItem]:
        if view.q:
            hits = await self.search(view, view.limit)
            return [FeedItem(h.article, f"{base}/a/{h.article.uid}", str(mark_html(h.context))) for h in hits]
        articles, _ = self.feed.articles_page(view.filter, limit=view.limit)
        return [FeedItem(a, f"{base}/a/{a.uid}") for a in articles]

    def feed_meta(self, request: Request, view: View, kind: str) -> FeedMeta:
        base = str(request.base_url).rstrip("/")
        parts = []
        if view.q:
            parts.append(f"“{view.q}”")
        if view.sources:
            parts.append(", ".join(view.sources))
        if view.angle:
            parts.append(f"angle: {view.angle}")
        title = TITLE + (" — " + " · ".join(parts) if parts else "")
        self_url = base + replace(view, cursor=None).url(f"/feed.{kind}")
        return FeedMeta(
            title=title,
            subtitle=TAGLINE,
            self_url=self_url,
            home_url=base + view.url("/"),
            id=self_url,
        )

    async def atom(self, request: Request) -> Response:
        return await self.output_feed(request, "atom")

    async def jsonfeed(self, request: Request) -> Response:
        return await self.output_feed(request, "json")

    async def output_feed(self, request: Request, kind: str) -> Response:
        try:
            view = View.from_query(request.query_params, default_limit=FEED_SIZE, max_limit=SEARCH_MAX)
        except BadParam as exc:
            if kind == "json":
                return json_error(400, exc.message, exc.name)
            return Response(f"{exc}\n", status_code=400, media_type="text/plain")
        view = replace(view, cursor=None)
        base = str(request.base_url).rstrip("/")

        async def make() -> Response:
            items = await self.feed_items(view, base)
            meta = self.feed_meta(request, view, kind)
            if kind == "atom":
                return Response(atom_feed(meta, items), media_type="application/atom+xml; charset=utf-8")
            return Response(json_feed(meta, items), media_type="application/feed+json; charset=utf-8")

        return await self.cached(request, (kind, view, base), make, ttl=SEARCH_TTL if view.q else None)

    # -- JSON API --------------------------------------------------------------------------
    async def api_articles(self, request: Request) -> Response:
        try:
            view = View.from_query(request.query_params, default_limit=50)
        except BadParam as exc:
            return json_error(400, exc.message, exc.name)
        return await self.cached(request, ("api_articles", view), partial(self._api_articles, view))

    async def _api_articles(self, view: View) -> Response:
        try:
            articles, cursor = self.feed.articles_page(view.filter, limit=view.limit, cursor=view.cursor)
        except EngfeedError as exc:
            return json_error(400, str(exc), "cursor")
        return JSONResponse(
            {
                "articles": [a.to_json() for a in articles],
                "total": self.total(view.filter),
                "next_cursor": cursor,
            }
        )

    async def api_search(self, request: Request) -> Response:
        try:
            view = View.from_query(request.query_params, default_limit=SEARCH_SIZE, max_limit=SEARCH_MAX)
        except BadParam as exc:
            return json_error(400, exc.message, exc.name)
        if not view.q:
            return json_error(400, "a query is required (q=...)", "q")
        return await self.cached(
            request, ("api_search", view), partial(self._api_search, view), ttl=SEARCH_TTL
        )

    async def _api_search(self, view: View) -> Response:
        try:
            hits = await self.search(view, view.limit)
        except EngfeedError as exc:
            return json_error(400, str(exc), "q")
        return JSONResponse({"query": view.q, "hits": [h.to_json() for h in hits], "count": len(hits)})

    async def api_article(self, request: Request) -> Response:
        uid = str(request.path_params["uid"])
        art = self.feed.article(uid) if len(uid) <= MAX_UID else None
        if art is None:
            return json_error(404, "no such article", "uid")
        data = art.to_json()
        data["content_html"] = str(body_html(art))
        data["page_url"] = f"/a/{art.uid}"
        summary = await self.in_thread(partial(self.feed.summary, art))
        data["summary"] = summary.to_json()
        data["summary_reason"] = summary.reason
        return JSONResponse(data)

    async def api_related(self, request: Request) -> Response:
        uid = str(request.path_params["uid"])
        try:
            limit = parse_limit(request.query_params.get("limit"), default=10, maximum=50)
        except BadParam as exc:
            return json_error(400, exc.message, exc.name)
        art = self.feed.article(uid) if len(uid) <= MAX_UID else None
        if art is None:
            return json_error(404, "no such article", "uid")
        hits = await self.related(uid, limit)
        return JSONResponse({"id": uid, "related": [h.to_json() for h in hits]})

    # -- reading state (JSON API) ------------------------------------------------------------
    async def api_state(self, request: Request) -> Response:
        """POST/DELETE .../save, PUT .../note, POST/DELETE .../read on one article.

        CSRF: browsers send a JSON body or a DELETE/PUT to another origin only after a CORS
        preflight, which this server never grants; a browser's Origin must be ours too.
        """
        uid = str(request.path_params["uid"])
        action = request.url.path.rsplit("/", 1)[-1]  # save, note or read: the route decides
        method = request.method
        if not same_origin(request):
            return json_error(403, "cross-origin request refused")
        body: dict[str, Any] = {}
        if method in ("POST", "PUT"):
            parsed = await json_object(request, limit=MAX_STATE_BODY, param="note")
            if isinstance(parsed, Response):
                return parsed
            body = parsed
        if action == "note" and method == "PUT" and "note" not in body:  # never clear by accident
            return json_error(400, 'send {"note": TEXT}, or {"note": null} to clear it', "note")
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            return json_error(400, "note must be a string or null", "note")
        try:
            if action == "save" and method == "POST":
                [art] = self.feed.save([uid], note=note)
            elif action == "save" and method == "DELETE":
                [art] = self.feed.unsave([uid])
            elif action == "note" and method == "PUT":
                art = self.feed.set_note(uid, note)
            elif action == "read" and method in ("POST", "DELETE"):
                [art] = self.feed.mark_read([uid], method == "POST")
            else:
                return json_error(405, f"{method} is not allowed on /{action}")
        except NoteTooLarge as exc:
            return json_error(413, str(exc), "note")
        except NoteNotText as exc:
            return json_error(400, str(exc), "note")
        except StoreError as exc:
            return json_error(503, f"not saved: {exc}")
        except EngfeedError as exc:
            return json_error(404, str(exc), "uid")
        return JSONResponse(art.to_json())

    async def api_sources(self, request: Request) -> Response:
        return JSONResponse({"sources": [source_json(s) for s in await self.sources()]})

    async def api_angles(self, request: Request) -> Response:
        self.cache.check()
        counts = {name.lower(): n for name, n in self.angle_counts()}
        return JSONResponse(
            {
                "angles": [
                    {
                        "name": a.name,
                        "description": a.description,
                        "terms": list(a.terms),
                        "articles": counts.get(a.name.lower(), 0),
                    }
                    for a in self.angle_defs()
                ]
            }
        )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def healthz(self, request: Request) -> Response:
        """For load balancers: 200 with ``status: ok`` while the database answers, else 503
        with ``status: error``; the database's state and the background work's."""
        now = time.monotonic()
        cached = self._health
        if cached is not None and now - cached[0] < HEALTH_TTL_S:
            health = cached[1]
        else:  # at most one database round trip per HEALTH_TTL_S, however often it is asked
            health = await self.in_thread(self.feed.health)
            self._health = (now, health)
        if health.queue is not None:
            background: dict[str, object] = {"kind": "queue", **health.queue}
        else:
            last = self.refresher.last
            background = {
                "kind": "in-process",
                "enabled": self.refresher.enabled,
                "running": self.refresher.running,
                "last_run": last.finished.isoformat() if last else None,
                "last_ok": last.ok if last else None,
            }
        body = {
            "status": "ok" if health.ok else "error",
            "database": health.to_json(),
            "background": background,
        }
        return JSONResponse(body, status_code=200 if health.ok else 503)

    async def favicon(self, request: Request) -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    # -- errors ----------------------------------------------------------------------------
    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "error"
        if request.url.path.startswith("/api/") or request.url.path == "/api":
            message = "not found" if status == 404 else str(detail)
            return json_error(status, message)
        headings = {404: "Page not found", 405: "Method not allowed"}
        heading = headings.get(status, "Something went wrong")
        message = "There is nothing at this address." if status == 404 else str(detail)
        response = self.error_page(request, status, heading, message)
        if isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)
        return response

    async def server_error(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, Unavailable):  # the database is away: an outage, not a bug
            log.warning("database unavailable on %s: %s", request.url.path, exc)
            headers = {"Retry-After": "10"}
            if request.url.path.startswith("/api/"):
                response = json_error(503, "the database is not answering; try again shortly")
                response.headers.update(headers)
                return response
            heading, message = "The feed is not available right now", "Its database is not answering."
            try:  # the site's own error page: it needs no database
                page = self.error_page(request, 503, heading, f"{message} Try again in a moment.")
            except Exception:
                log.exception("the error page could not be rendered")
                page = HTMLResponse(
                    f'<!doctype html><html lang="en"><title>Unavailable</title><main><h1>{heading}</h1>'
                    f"<p>{message}</p></main></html>",
                    status_code=503,
                )
            page.headers.update(headers)
            return page
        log.error("internal error on %s", request.url.path, exc_info=exc)
        if request.url.path.startswith("/api/"):
            return json_error(500, "internal error")
        return HTMLResponse(
            "<!doctype html><title>Error</title><h1>Something went wrong</h1>"
            "<p>The error was logged. <a href='/'>Back to the feed</a></p>",
            status_code=500,
        )

    # -- wiring ----------------------------------------------------------------------------
    def routes(self) -> Sequence[Route | Mount]:
        return [
            Route("/", self.home, name="home"),
            Route("/a/{uid}/save", self.state_form, methods=["POST"], name="form_save"),
            Route("/a/{uid}/read", self.state_form, methods=["POST"], name="form_read"),
            Route("/a/{uid}/note", self.state_form, methods=["POST"], name="form_note"),
            Route("/mark-read", self.mark_read_above, methods=["POST"], name="mark_read"),
            Route("/preview", self.note_preview, methods=["POST"], name="preview"),
            Route("/reading-list", self.reading_list_page, name="reading_list"),
            Route("/reading-list.md", self.reading_list_markdown, name="reading_list_md"),
            Route(
                "/reading-list/import", self.reading_list_import, methods=["POST"], name="reading_list_import"
            ),
            Route("/a/{uid:path}", self.article_page, name="article"),
            Route("/sources", self.sources_page, name="sources"),
            Route("/refresh", self.refresh, methods=["POST"], name="refresh"),
            Route("/feed.atom", self.atom, name="feed_atom"),
            Route("/feed.json", self.jsonfeed, name="feed_json"),
            Route("/docs", self.docs, name="docs"),
            Route("/openapi.json", self.openapi, name="openapi"),
            Route("/healthz", self.healthz, name="healthz"),
            Route("/favicon.ico", self.favicon, name="favicon"),
            Route("/api/articles", self.api_articles, name="api_articles"),
            Route("/api/articles/{uid}/related", self.api_related, name="api_related"),
            Route("/api/articles/{uid}", self.api_article, name="api_article"),
            Route("/api/articles/{uid}/save", self.api_state, methods=["POST", "DELETE"], name="api_save"),
            Route("/api/articles/{uid}/note", self.api_state, methods=["PUT"], name="api_note"),
            Route("/api/articles/{uid}/read", self.api_state, methods=["POST", "DELETE"], name="api_read"),
            Route("/api/search", self.api_search, name="api_search"),
            Route("/api/sources", self.api_sources, name="api_sources"),
            Route("/api/angles", self.api_angles, name="api_angles"),
            *AnglePages(self).routes(),
            *RulePages(self).routes(),
            *DigestPages(self).routes(),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ]


def with_done(target: str, done: str) -> str:
    """``target`` (a local path) with ``done=`` set to ``done``, its other parameters and its
    fragment kept."""
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "done"]
    query.append(("done", done))
    return urlunsplit(("", "", parts.path, urlencode(query), parts.fragment))


def opened_here(request: Request) -> bool:
    """Did the reader open this page from our own pages (or type it)? Browsers say so in
    ``Sec-Fetch-Site``; without the header (older browsers, scripts) we assume yes."""
    site = request.headers.get("sec-fetch-site")
    return site is None or site in ("same-origin", "none")


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def iso_or_none(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def source_json(s: Source) -> dict[str, object]:
    """``engfeed sources list --json`` fields plus ``health`` and a plain-language ``hint``."""
    return {
        **s.to_json(),
        "health": health(s),
        "hint": failure_hint(s),
    }


def refresh_summary(report: IngestReport) -> str:
    failed = len(report.failed)
    line = (
        f"{len(report.items)} sources checked: {report.total('new')} new, "
        f"{report.total('updated')} updated articles, {failed} failed"
    )
    if report.text is not None and report.text.items:
        line += f"; full text for {report.text.count('ok')} of {len(report.text.items)} teaser articles"
    return line


def create_app(
    feed: Feed,
    *,
    refresh_interval_min: float | None = None,
    csrf_secret: bytes | None = None,
    refresh_jitter_s: float | None = None,
    refresh_initial_delay_s: float | None = None,
    warm_search: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    base_url: str = "",
    digest_check_s: float = DIGEST_CHECK_S,
) -> Starlette:
    """The ASGI app over ``feed``.

    ``refresh_interval_min``: minutes between background refreshes (default
    ``ENGFEED_REFRESH_INTERVAL``, 30; ``0`` turns them off). The refresh jitter defaults to a
    tenth of the interval and the first run to 5 s after startup. ``warm_search`` loads the
    search index at startup so the first query is not slow. ``allowed_hosts``: the host
    names requests may carry (default :func:`engfeed.config.allowed_hosts`); any other
    ``Host`` gets a 421. When mail is configured (``ENGFEED_SMTP_URL``, ``ENGFEED_DIGEST_TO``)
    the weekly digest is sent when due, checked every ``digest_check_s`` seconds; its links
    point at ``ENGFEED_BASE_URL``, else ``base_url`` (serve's own address).
    """
    minutes = config.refresh_interval_minutes() if refresh_interval_min is None else refresh_interval_min
    queued = feed.has_job_queue
    if queued:
        log.info("background work runs on engfeed worker processes: this server does not refresh on its own")
        minutes = 0

    def job(only_due: bool) -> str:
        nonlocal queued
        if not queued and feed.has_job_queue:  # the first worker started after this server
            queued = site.queued = True
            log.info("engfeed workers now do the background work: this server stops refreshing on its own")
        if queued and only_due:  # the workers' own schedule covers what is due
            return "skipped: engfeed workers refresh the sources"
        if only_due and not feed.claim_schedule():  # lost with a database restart, and taken
            return "skipped: another engfeed serve process runs the schedule"
        if queued:  # "Refresh now" with workers: they fetch, this process only asks them to
            try:
                from engfeed.jobs import request_refresh
            except ImportError:
                log.warning("the job queue is not installed here (engfeed[postgres]): refreshing in-process")
            else:
                return request_refresh(feed)
        line = refresh_summary(feed.refresh(only_due=only_due))
        made = feed.warm_summaries()
        return line + (f"; {made} {'summary' if made == 1 else 'summaries'} made ahead" if made else "")

    refresher = Refresher(
        job,
        interval_s=max(0.0, minutes) * 60,
        jitter_s=refresh_jitter_s,
        initial_delay_s=refresh_initial_delay_s,
    )
    site = Site(feed, refresher=refresher, csrf=Csrf(csrf_secret or feed.web_secret()), queued=queued)
    mailer = None if queued else digest_mailer(feed, base_url=base_url, interval_s=digest_check_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if warm_search:
            _warm(feed)
        scheduled = refresher.enabled or mailer is not None
        if scheduled and not await anyio.to_thread.run_sync(feed.claim_schedule):
            log.info("another engfeed serve process on this store runs the refresh schedule")
        else:
            _relabel(feed)  # angles edited, or labelled without the model, since the last run
            refresher.start()
            if mailer is not None:
                mailer.start()
        try:
            yield
        finally:
            await refresher.stop()
            if mailer is not None:
                await mailer.stop()

    app = Starlette(
        routes=list(site.routes()),
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            Middleware(
                AllowedHostsMiddleware,
                allowed=config.allowed_hosts() if allowed_hosts is None else allowed_hosts,
            ),
        ],
        exception_handlers={HTTPException: site.http_error, Exception: site.server_error},
        lifespan=lifespan,
    )
    app.state.site = site
    app.state.refresher = refresher
    return app


def digest_mailer(feed: Feed, *, base_url: str, interval_s: float) -> Refresher | None:
    """The weekly digest's schedule for ``serve`` (None when mail is not configured: a bad
    setting is logged, and the server runs without it)."""
    try:
        settings = config.digest_settings()
    except ConfigError as exc:
        log.warning("the weekly digest is off: %s", exc)
        return None
    if not settings.can_send:
        return None
    if not settings.base_url and base_url:
        settings = replace(settings, base_url=base_url.rstrip("/"))

    def job(only_due: bool) -> str:
        report = feed.send_digest_if_due(settings)
        if report is None:
            return "digest not due"
        log.info("weekly digest %s: %s", report.status, report.message or ", ".join(report.recipients))
        return f"digest {report.status}"

    return Refresher(job, interval_s=interval_s, jitter_s=0, initial_delay_s=min(60.0, interval_s))


def _warm(feed: Feed) -> None:
    """Load the vector index and the query model on a daemon thread (the first query should not pay)."""

    def run() -> None:
        try:
            feed.search("engineering", limit=1)
        except Exception:  # warming is best effort
            log.exception("search warm-up failed")

    threading.Thread(target=run, name="engfeed-warm", daemon=True).start()


def _relabel(feed: Feed) -> None:
    """Bring every article's angles in line with this server's angles and model, on a daemon
    thread (labels only; a few seconds for the whole shared corpus, nothing when none is due),
    so a card's chips and its "why this angle" never disagree after an angles-file edit."""

    def run() -> None:
        try:
            feed.label_pending()
        except Exception:  # best effort: the next refresh labels them too
            log.exception("re-labelling at start failed")

    threading.Thread(target=run, name="engfeed-relabel", daemon=True).start()


__all__ = ["Site", "create_app", "local_path"]
