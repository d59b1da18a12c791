"""Full text for teaser feeds: fetch article pages politely, extract, decide when to retry.

Pages go through the feed fetcher (engfeed.fetch) with the same limits, timeouts, size cap
(5 MB here), conditional GET, per-host politeness and address policy, asking for HTML and
at most one request in flight per host. ``robots.txt`` is asked first, per origin, and kept
in the store (engfeed.robots). Each host's pages are fetched one after another, newest
first, each with its own time budget (a page never times out waiting behind its siblings);
no page starts after :data:`PAGE_RUN_BUDGET` seconds, so a slow or hanging host ends the run
in bounded time, and the pages it did not reach are left for the next run. Nothing here
raises for anything a server does: every fetched (or refused) page ends as one
:class:`PageOutcome` whose :class:`~engfeed.store.pages.PageRecord` says what to store,
including when to try again:

==================  ===============================================  =====================
outcome             examples                                         next try
==================  ===============================================  =====================
``ok``              the page gave its article                         never (unless asked)
``not_article``     404/410, 401/403, a login redirect, a paywall,    in 30 days
                    a video or PDF, a page over the size cap
``blocked``         robots.txt disallows the page                    in 7 days
``failed``          timeout, connection error, 5xx, 429, robots.txt   1 h, 2 h, 4 h ... 7 days
                    unreachable (5xx, timeout: RFC 9309 disallows     (or ``Retry-After``)
                    everything until it answers)
==================  ===============================================  =====================
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from engfeed.extract import extract_page
from engfeed.fetch import FetchConfig, FetchResult, fetch_one, make_client
from engfeed.models import Source
from engfeed.robots import MAX_BYTES as ROBOTS_MAX_BYTES
from engfeed.robots import RobotsRules, origin_of, robots_url
from engfeed.store.pages import PageRecord, PagesPart, PageTarget

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
PAGE_MAX_BYTES = 5 * 1024 * 1024
PAGE_TOTAL_TIMEOUT = 20.0  # seconds per page, redirects and body included
PAGE_CONCURRENCY = 8
PAGE_RUN_BUDGET = 120.0  # seconds into a run after which no page fetch starts
NOT_ARTICLE_RETRY = timedelta(days=30)
BLOCKED_RETRY = timedelta(days=7)
FAILED_RETRY_FIRST = timedelta(hours=1)
FAILED_RETRY_MAX = timedelta(days=7)

#: Why a page was not fetched (the ``blocked`` argument of ``on_result``).
ROBOTS_DISALLOWS = "robots.txt disallows this page"
ROBOTS_UNREACHABLE = "robots.txt could not be fetched"
NOT_HTTP = "not an http(s) link"


@dataclass(frozen=True, slots=True)
class PageOutcome:
    target: PageTarget
    record: PageRecord


def page_config(base: FetchConfig) -> FetchConfig:
    """The feed fetcher's settings for article pages: HTML, smaller budget, one per host."""
    return replace(
        base,
        accept=PAGE_ACCEPT,
        max_bytes=min(base.max_bytes, PAGE_MAX_BYTES),
        total_timeout=min(base.total_timeout, PAGE_TOTAL_TIMEOUT),
        concurrency=min(base.concurrency, PAGE_CONCURRENCY),
        per_host=1,
    )


async def fetch_pages(
    targets: Sequence[PageTarget],
    pages: PagesPart,
    config: FetchConfig,
    on_result: Callable[[PageTarget, FetchResult | None, str | None], None],
    *,
    now: datetime | None = None,
) -> None:
    """Fetch each target's page (robots.txt permitting); ``on_result(target, result,
    blocked_reason)`` gets each outcome as it completes, on the event loop's thread.
    Targets a host could not reach within :data:`PAGE_RUN_BUDGET` get no call (they stay
    due). Extraction is the caller's job (it is CPU work; keep it off the loop)."""
    if not targets:
        return
    cfg = page_config(config)
    now = now or datetime.now(UTC)
    async with make_client(cfg) as client:
        rules = await _robots_for({origin_of(t.url) for t in targets} - {None}, pages, client, cfg, now)
        loop = asyncio.get_running_loop()
        stop = loop.time() + PAGE_RUN_BUDGET

        async def one(target: PageTarget) -> None:
            origin = origin_of(target.url)
            rule = rules.get(origin) if origin else None
            if origin is None:
                on_result(target, None, NOT_HTTP)
            elif rule is not None and rule.deny_all:
                on_result(target, None, f"{ROBOTS_UNREACHABLE} ({rule.error or 'unreachable'})")
            elif rule is not None and not rule.allows(target.url):
                on_result(target, None, ROBOTS_DISALLOWS)
            else:
                source = Source(
                    name=target.uid, url=target.url, etag=target.etag, last_modified=target.last_modified
                )
                on_result(target, await fetch_one(client, source, cfg), None)

        async def host(queue: list[PageTarget]) -> None:
            # One page at a time per host (cfg.per_host is 1 anyway), so that each page's
            # budget starts with its own request rather than with the run.
            for target in queue:
                if loop.time() >= stop:
                    return
                await one(target)

        await asyncio.gather(*(host(queue) for queue in _by_host(targets).values()))


def _by_host(targets: Sequence[PageTarget]) -> dict[str, list[PageTarget]]:
    """Targets grouped by host name, each group in the given order (newest first)."""
    groups: dict[str, list[PageTarget]] = {}
    for target in targets:
        try:
            name = (urlsplit(target.url).hostname or "").lower()
        except ValueError:
            name = ""
        groups.setdefault(name, []).append(target)
    return groups


async def _robots_for(
    origins: set[str | None],
    pages: PagesPart,
    client: httpx.AsyncClient,
    cfg: FetchConfig,
    now: datetime,
) -> dict[str, RobotsRules]:
    rules: dict[str, RobotsRules] = {}
    wanted: list[str] = []
    for origin in sorted(o for o in origins if o):
        known = pages.robots(origin)
        if known is not None and known.fresh(now):
            rules[origin] = known
        else:
            wanted.append(origin)
    robots_cfg = replace(cfg, accept="text/plain, */*;q=0.5", max_bytes=ROBOTS_MAX_BYTES, truncate=True)

    async def fetch(origin: str) -> None:
        result = await fetch_one(client, Source(name=origin, url=robots_url(origin)), robots_cfg)
        status = result.status if result.error is None or result.status else None
        got = RobotsRules.from_response(origin, now, status, result.body, result.error)
        rules[origin] = got
        pages.save_robots(got)

    await asyncio.gather(*(fetch(o) for o in wanted))
    return rules


def outcome_of(
    target: PageTarget, result: FetchResult | None, blocked: str | None, *, now: datetime
) -> PageOutcome:
    """What to store for one fetched (or skipped) page; extracts the article (CPU work)."""
    if result is None:
        reason = blocked or "skipped"
        if reason.startswith(ROBOTS_UNREACHABLE):  # a transient refusal: ask again soon
            record = PageRecord("failed", reason=reason, url=target.url, next_try=now + _backoff(target))
        elif reason == ROBOTS_DISALLOWS:
            record = PageRecord("blocked", reason=reason, url=target.url, next_try=now + BLOCKED_RETRY)
        else:
            record = PageRecord(
                "not_article", reason=reason, url=target.url, next_try=now + NOT_ARTICLE_RETRY
            )
        return PageOutcome(target, record)
    base = {
        "url": result.final_url,
        "http_status": result.status,
        "etag": result.etag,
        "last_modified": result.last_modified,
    }
    if result.not_modified:
        return PageOutcome(target, PageRecord("not_modified", **base))  # type: ignore[arg-type]
    if result.error is not None or result.body is None:
        return PageOutcome(target, _failure(target, result, now=now))
    page = extract_page(
        result.body,
        url=result.final_url,
        content_type=result.headers.get("content-type", ""),
        title=target.title,
        requested=target.url,
    )
    if page.status != "ok":
        return PageOutcome(
            target,
            PageRecord("not_article", reason=page.reason, next_try=now + NOT_ARTICLE_RETRY, **base),  # type: ignore[arg-type]
        )
    return PageOutcome(target, PageRecord("ok", html=page.html, text=page.text, **base))  # type: ignore[arg-type]


def _failure(target: PageTarget, result: FetchResult, *, now: datetime) -> PageRecord:
    error = result.error or "no body"
    status = result.status
    if (status is not None and status in (401, 402, 403, 404, 410, 451)) or "larger than" in error:
        return PageRecord(
            "not_article",
            reason=error,
            url=result.final_url,
            http_status=status,
            next_try=now + NOT_ARTICLE_RETRY,
        )
    delay = _backoff(target)
    if result.retry_after:
        delay = max(delay, timedelta(seconds=result.retry_after))
    return PageRecord("failed", reason=error, url=result.final_url, http_status=status, next_try=now + delay)


def _backoff(target: PageTarget) -> timedelta:
    """1 h after the first failure, doubling with each attempt before it, at most 7 days."""
    doubled: timedelta = FAILED_RETRY_FIRST * 2 ** min(target.attempts, 10)
    return min(doubled, FAILED_RETRY_MAX)
