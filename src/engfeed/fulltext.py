"""Full text for teaser feeds: fetch article pages politely, extract, decide when to retry.

Pages go through the feed fetcher (engfeed.fetch) with the same limits, timeouts, size cap
(5 MB here), conditional GET, per-host politeness and address policy, asking for HTML and
at most one request in flight per host. ``robots.txt`` is asked first, per origin, and kept
in the store (engfeed.robots). Nothing here raises for anything a server does: every target
ends as one :class:`PageOutcome` whose :class:`~engfeed.store.pages.PageRecord` says what to
store, including when to try again:

==================  ===============================================  =====================
outcome             examples                                         next try
==================  ===============================================  =====================
``ok``              the page gave its article                         never (unless asked)
``not_article``     404/410, 401/403, a login redirect, a paywall,    in 30 days
                    a video or PDF, a page over the size cap
``blocked``         robots.txt disallows the page                    in 7 days
``failed``          timeout, connection error, 5xx, 429               1 h, 2 h, 4 h ... 7 days
                                                                     (or ``Retry-After``)
==================  ===============================================  =====================
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx

from engfeed.extract import extract_page
from engfeed.fetch import FetchConfig, FetchResult, fetch_one, make_client
from engfeed.models import Source
from engfeed.robots import RobotsRules, origin_of, robots_url
from engfeed.store.pages import PageRecord, PagesPart, PageTarget

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
PAGE_MAX_BYTES = 5 * 1024 * 1024
PAGE_TOTAL_TIMEOUT = 20.0  # seconds per page, redirects and body included
PAGE_CONCURRENCY = 8
NOT_ARTICLE_RETRY = timedelta(days=30)
BLOCKED_RETRY = timedelta(days=7)
FAILED_RETRY_FIRST = timedelta(hours=1)
FAILED_RETRY_MAX = timedelta(days=7)


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
    Extraction is the caller's job (it is CPU work; keep it off the loop)."""
    if not targets:
        return
    cfg = page_config(config)
    now = now or datetime.now(UTC)
    async with make_client(cfg) as client:
        rules = await _robots_for({origin_of(t.url) for t in targets} - {None}, pages, client, cfg, now)

        async def one(target: PageTarget) -> None:
            origin = origin_of(target.url)
            rule = rules.get(origin) if origin else None
            if origin is None:
                on_result(target, None, "not an http(s) link")
                return
            if rule is not None and not rule.allows(target.url):
                on_result(target, None, "robots.txt disallows this page")
                return
            source = Source(
                name=target.uid, url=target.url, etag=target.etag, last_modified=target.last_modified
            )
            on_result(target, await fetch_one(client, source, cfg), None)

        await asyncio.gather(*(one(t) for t in targets))


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
    robots_cfg = replace(cfg, accept="text/plain, */*;q=0.5", max_bytes=512 * 1024)

    async def fetch(origin: str) -> None:
        result = await fetch_one(client, Source(name=origin, url=robots_url(origin)), robots_cfg)
        status = result.status if result.error is None or result.status else None
        got = RobotsRules.from_response(origin, now, status, result.body)
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
        status = "blocked" if "robots" in reason else "not_article"
        retry = BLOCKED_RETRY if status == "blocked" else NOT_ARTICLE_RETRY
        return PageOutcome(target, PageRecord(status, reason=reason, url=target.url, next_try=now + retry))
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
    delay = min(FAILED_RETRY_FIRST * (2 ** min(target.attempts, 10)), FAILED_RETRY_MAX)
    if result.retry_after:
        delay = max(delay, timedelta(seconds=result.retry_after))
    return PageRecord("failed", reason=error, url=result.final_url, http_status=status, next_try=now + delay)
