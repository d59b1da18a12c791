"""Full text for teaser feeds, end to end: refresh → article pages → stored text.

Every page is served by the test's own server on 127.0.0.1: real article HTML read from
``../shared`` at test time (never copied here) inside real-world boilerplate (see
test_extract.py), or a hostile page. Every case ends within its time budget as one recorded
outcome per page (ok, not_article, blocked, failed) with the right next try.
"""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from conftest import run_cli
from engfeed import fulltext
from engfeed.feed import Feed, TextReport
from engfeed.fetch import FetchConfig
from engfeed.models import Article
from engfeed.store import Store
from httpserver import LocalHTTPServer, Response, fake_resolver, http_date
from pgserver import NewStore
from test_extract import ARTICLES, BOILERPLATE, HOSTILE, article_page, assert_inert, body_html, real_articles

BUDGET = 2.0
CONFIG = FetchConfig(connect_timeout=1.0, read_timeout=1.0, total_timeout=BUDGET)
HTML = {"Content-Type": "text/html; charset=utf-8"}
START = datetime(2026, 10, 1, 12, tzinfo=UTC)
#: A word that only the article pages hold (never a feed): search finds it only in page text.
PAGE_WORD = "quokkascheduler"
PAGE_SENTENCE = f"<p>We named the new batch scheduler {PAGE_WORD} after a long and happy debate.</p>"


# -- a blog: a feed of teasers (or full posts) and the article pages behind it -----------------
@dataclass
class Post:
    slug: str
    article: Article  # a real article: its title, its HTML for the page, its text
    full: bool = False  # the feed carries the whole article, not a teaser

    @property
    def title(self) -> str:
        return self.article.title


def teaser(article: Article, words: int = 40) -> str:
    return " ".join(article.text.split()[:words]) + " …"


def rss_feed(base: str, posts: Sequence[Post], *, start: datetime = START) -> bytes:
    """RSS 2.0 of ``posts``, newest first, a day apart: a teaser description each, and the
    whole article as content:encoded for ``full`` posts."""
    items = []
    for i, post in enumerate(posts):
        content = ""
        if post.full:
            content = f"<content:encoded><![CDATA[{body_html(post.article)}]]></content:encoded>"
        items.append(
            f"<item><title>{escape(post.title)}</title><link>{base}/{post.slug}</link>"
            f"<guid isPermaLink='false'>{post.slug}</guid>"
            f"<pubDate>{format_datetime(start - timedelta(days=i))}</pubDate>"
            f"<description>{escape(teaser(post.article))}</description>{content}</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>Example Engineering</title><link>{base}/</link><description>d</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def posts(shared: Path, n: int) -> list[Post]:
    picks = tuple(
        (ARTICLES[i % len(ARTICLES)][0], ARTICLES[i % len(ARTICLES)][1] + i // len(ARTICLES))
        for i in range(n)
    )
    return [Post(f"post-{i}", a) for i, a in enumerate(real_articles(shared, picks))]


def serve_pages(server: LocalHTTPServer, items: Sequence[Post], **response: object) -> None:
    for post in items:
        body = article_page(post.title, body_html(post.article), extra=PAGE_SENTENCE)
        server.route(f"/{post.slug}", Response(body=body, headers=dict(HTML), **response))  # type: ignore[arg-type]


def publish(server: LocalHTTPServer, feed: Feed, items: Sequence[Post]) -> None:
    server.route(
        "/feed.xml", body=rss_feed(server.base, items), headers={"Content-Type": "application/rss+xml"}
    )
    if feed.source("Example") is None:
        feed.store.add_source("Example", server.url("/feed.xml"))


def store_args(feed: Feed) -> list[str]:
    """The CLI options that name ``feed``'s store."""
    where = feed.store.location
    return ["--database-url", where] if where.startswith("postgresql://") else ["--db", where]


def make_feed(new_store: NewStore, config: FetchConfig = CONFIG, *, fulltext: bool = True) -> Feed:
    """A Feed over a new store on the test's backend (each test runs on both)."""
    return Feed(Store(new_store("s")), fetch_config=config, embedder=None, fulltext=fulltext)


def by_url(feed: Feed, server: LocalHTTPServer, slug: str) -> Article:
    found = [a for a in feed.articles(limit=200).articles if a.url == server.url(f"/{slug}")]
    assert len(found) == 1, slug
    full = feed.article(found[0].uid)
    assert full is not None
    return full


def page_requests(server: LocalHTTPServer) -> list[str]:
    return [r.path for r in server.requests if r.path not in ("/feed.xml", "/robots.txt")]


def statuses(report: TextReport | None) -> dict[str, str]:
    assert report is not None
    return {item.url.rsplit("/", 1)[-1]: item.status for item in report.items}


def close_to(when: datetime | None, expected: datetime, slack: timedelta = timedelta(minutes=2)) -> bool:
    return when is not None and abs(when - expected) <= slack


# -- the teaser rule, the order and the per-run limit --------------------------------------------
def test_refresh_fetches_only_teaser_pages_newest_first(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 4)
    items[1].full = True  # this post's feed item carries the whole article
    serve_pages(http_server, items)
    publish(http_server, feed, items)
    report = feed.refresh()
    assert page_requests(http_server) == ["/post-0", "/post-2", "/post-3"]  # newest first, no post-1
    assert statuses(report.text) == {"post-0": "ok", "post-2": "ok", "post-3": "ok"}
    assert report.text is not None and report.text.remaining == 0
    assert by_url(feed, http_server, "post-1").text_source == "feed"
    assert by_url(feed, http_server, "post-0").text_source == "page"
    # Nothing is fetched again on the next refresh: every teaser has its text.
    again = feed.refresh()
    assert again.text is not None and again.text.items == []
    assert len(page_requests(http_server)) == 3


def test_fulltext_off_fetches_no_page(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store, fulltext=False)
    items = posts(shared_dir, 2)
    serve_pages(http_server, items)
    publish(http_server, feed, items)
    report = feed.refresh()
    assert report.text is None and page_requests(http_server) == []
    assert http_server.requests_for("/robots.txt") == []


def test_the_per_run_limit_takes_the_newest_teasers_first(
    new_store: NewStore,
    tmp_path: Path,
    shared_dir: Path,
    http_server: LocalHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGFEED_FULLTEXT_PER_RUN", "2")
    feed = make_feed(new_store)
    items = posts(shared_dir, 5)
    serve_pages(http_server, items)
    publish(http_server, feed, items)
    report = feed.refresh()
    assert page_requests(http_server) == ["/post-0", "/post-1"]
    assert report.text is not None and report.text.remaining == 3
    later = feed.fetch_text(missing=True, limit=2)  # an explicit limit beats the setting
    assert [i.url.rsplit("/", 1)[-1] for i in later.items] == ["post-2", "post-3"]
    assert later.remaining == 1
    last = feed.fetch_text(missing=True)  # the setting again: at most 2, one is left
    assert [i.url.rsplit("/", 1)[-1] for i in last.items] == ["post-4"] and last.remaining == 0
    assert feed.fetch_text(missing=True).items == []


# -- what is stored ------------------------------------------------------------------------------
@pytest.mark.usefixtures("cli_env")
def test_the_page_text_is_stored_searchable_and_sanitised(
    new_store: NewStore,
    tmp_path: Path,
    shared_dir: Path,
    http_server: LocalHTTPServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 2)
    hostile = '<p>Trap: <img src="x.png" onerror="alert(1)"><script>alert(2)</script></p>'
    page = article_page(items[0].title, body_html(items[0].article), extra=PAGE_SENTENCE + hostile)
    http_server.route("/post-0", body=page, headers=HTML)
    serve_pages(http_server, items[1:])
    publish(http_server, feed, items)
    assert feed.search(PAGE_WORD) == []  # nothing stored yet
    feed.refresh()
    art = by_url(feed, http_server, "post-0")
    assert art.text_source == "page"
    assert PAGE_WORD in art.text and len(art.text.split()) > 300
    assert [b for b in BOILERPLATE if b in art.text and b not in items[0].article.text] == []
    assert art.page_html and "<p>" in art.page_html
    assert_inert(art.page_html)
    assert "alert(" not in art.page_html and "alert(" not in art.text
    assert art.excerpt  # the feed's own excerpt stays
    stored = feed.store.pages.page(art.id or 0)
    assert stored is not None and stored.status == "ok" and stored.next_try is None
    assert stored.words == len(art.text.split())
    # BM25 finds the word that only the pages hold: both articles, through their page text.
    hits = feed.search(PAGE_WORD)
    assert {h.article.url for h in hits} == {http_server.url("/post-0"), http_server.url("/post-1")}
    # The CLI shows where the text comes from.
    code, out, err = run_cli(capsys, *store_args(feed), "show", art.uid, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["text_source"] == "page" and PAGE_WORD in shown["text"]
    code, out, _ = run_cli(capsys, *store_args(feed), "show", art.uid)
    assert code == 0 and "(Text extracted from the original page)" in out


def test_feed_updates_keep_page_text_until_the_feed_carries_the_full_text(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 1)
    serve_pages(http_server, items)
    publish(http_server, feed, items)
    feed.refresh()
    first = by_url(feed, http_server, "post-0")
    assert first.text_source == "page"
    # The feed changes the teaser: still a teaser, so the page's text stays.
    changed = Post("post-0", items[0].article)
    http_server.route(
        "/feed.xml",
        body=rss_feed(http_server.base, [changed]).replace(b"<description>", b"<description>Updated: "),
    )
    report = feed.refresh()
    assert report.items[0].updated == 1
    kept = by_url(feed, http_server, "post-0")
    assert kept.text_source == "page" and kept.text == first.text and kept.page_html == first.page_html
    assert len(page_requests(http_server)) == 1  # and the page is not fetched again
    # The feed now carries the whole article: its own text wins.
    changed.full = True
    http_server.route("/feed.xml", body=rss_feed(http_server.base, [changed]))
    feed.refresh()
    full = by_url(feed, http_server, "post-0")
    assert full.text_source == "feed" and full.page_html == ""
    assert PAGE_WORD not in full.text and len(full.text.split()) > 300
    assert feed.search(PAGE_WORD) == []
    # Back to teasers: the kept page text comes back, without fetching the page again.
    changed.full = False
    http_server.route(
        "/feed.xml",
        body=rss_feed(http_server.base, [changed]).replace(b"<description>", b"<description>Again: "),
    )
    feed.refresh()
    again = by_url(feed, http_server, "post-0")
    assert again.text_source == "page" and again.text == first.text and again.page_html == first.page_html
    assert len(page_requests(http_server)) == 1


def test_a_page_no_longer_than_the_feed_text_keeps_the_feed_text(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    [post] = posts(shared_dir, 1)
    words = post.article.text.split()
    short_page = "<p>" + " ".join(words[:100]) + "</p>"  # 100 words: an article, but short
    http_server.route("/post-0", body=article_page(post.title, short_page), headers=HTML)
    feed_text = " ".join(words[:140])  # 140 words in the feed: a teaser, longer than the page
    body = rss_feed(http_server.base, [post]).replace(
        escape(teaser(post.article)).encode(), escape(feed_text).encode()
    )
    feed = make_feed(new_store)
    http_server.route("/feed.xml", body=body)
    feed.store.add_source("Example", http_server.url("/feed.xml"))
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "ok"}
    art = by_url(feed, http_server, "post-0")
    assert art.text_source == "feed" and art.text.startswith(" ".join(words[:20]))
    assert report.text is not None and report.text.items[0].changed is False
    assert feed.fetch_text(missing=True).items == []  # the page gave what it had: not fetched again


# -- hostile pages never stall or leak ---------------------------------------------------------------
def test_a_hanging_page_ends_within_the_budget_and_is_retried_in_an_hour(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 3)
    serve_pages(http_server, items[:1], delay=30)  # never answers in time
    page = article_page(items[1].title, body_html(items[1].article))
    http_server.route("/post-1", Response(body=page, headers=HTML, drip=0.2))  # a byte every 0.2 s
    serve_pages(http_server, items[2:])
    publish(http_server, feed, items)
    started = time.monotonic()
    report = feed.refresh()
    elapsed = time.monotonic() - started
    assert elapsed < 3 * BUDGET + 4, elapsed  # the feed, then the two slow pages, one after another
    assert statuses(report.text) == {"post-0": "failed", "post-1": "failed", "post-2": "ok"}
    assert report.text is not None
    reasons = {i.url.rsplit("/", 1)[-1]: i.reason for i in report.text.items}
    assert "timed out" in reasons["post-0"] and "timed out" in reasons["post-1"]
    now = datetime.now(UTC)
    for slug in ("post-0", "post-1"):
        art = by_url(feed, http_server, slug)
        stored = feed.store.pages.page(art.id or 0)
        assert stored is not None and stored.status == "failed"
        assert close_to(stored.next_try, now + fulltext.FAILED_RETRY_FIRST)
        assert art.text_source == "feed"
    assert report.text.remaining == 0  # not due again before their retry time


def test_pages_of_one_host_never_time_out_waiting_behind_each_other(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 10)
    serve_pages(http_server, items, delay=0.3)  # 10 x 0.3 s: longer than one page's budget
    publish(http_server, feed, items)
    report = feed.refresh()
    assert set(statuses(report.text).values()) == {"ok"}
    assert http_server.max_in_flight == 1  # one request at a time on the host


def test_the_run_budget_leaves_the_pages_it_did_not_reach_for_the_next_run(
    new_store: NewStore,
    tmp_path: Path,
    shared_dir: Path,
    http_server: LocalHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fulltext, "PAGE_RUN_BUDGET", 1.0)
    feed = make_feed(new_store)
    items = posts(shared_dir, 6)
    serve_pages(http_server, items, delay=0.4)
    publish(http_server, feed, items)
    started = time.monotonic()
    report = feed.refresh()
    assert time.monotonic() - started < BUDGET + 1.0 + 4
    assert report.text is not None
    done = statuses(report.text)
    assert 1 <= len(done) < 6 and set(done.values()) == {"ok"}  # none recorded as failed
    assert report.text.remaining == 6 - len(done)
    assert list(done) == [f"post-{i}" for i in range(len(done))]  # newest first
    rest = feed.fetch_text(missing=True)
    assert len(rest.items) >= 1 and set(statuses(rest).values()) == {"ok"}


def test_a_redirect_to_a_login_page_is_not_an_article(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    [post] = posts(shared_dir, 1)
    http_server.redirect("/post-0", "/account/login?next=/post-0", status=302)
    # However much text the login page holds, it is not the article.
    login = article_page("Sign in", body_html(post.article))
    http_server.route("/account/login", body=login, headers=HTML)
    publish(http_server, feed, [post])
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "not_article"}
    art = by_url(feed, http_server, "post-0")
    stored = feed.store.pages.page(art.id or 0)
    assert stored is not None and "log in" in stored.reason
    assert stored.url == http_server.url("/account/login?next=/post-0")
    assert close_to(stored.next_try, datetime.now(UTC) + fulltext.NOT_ARTICLE_RETRY)
    assert art.text_source == "feed"


def test_a_50_mb_page_is_cut_at_the_cap_in_bounded_memory(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store, FetchConfig(connect_timeout=1.0, read_timeout=2.0, total_timeout=20.0))
    items = posts(shared_dir, 3)
    http_server.route("/post-0", Response(headers=HTML, endless=True, body=b"<p>" + b"word " * 13_000))
    bomb = gzip.compress(b"<html><body><p>" + b"a" * (50 * 1024 * 1024), 9)  # 50 MB in ~50 KB
    http_server.route("/post-1", body=bomb, headers={**HTML, "Content-Encoding": "gzip"})
    declared = {**HTML, "Content-Length": str(50 * 1024 * 1024)}  # says 50 MB: refused unread
    http_server.route("/post-2", Response(body=b"x" * 100, headers=declared, content_length=False))
    publish(http_server, feed, items)
    tracemalloc.start()
    try:
        started = time.monotonic()
        report = feed.refresh()
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert statuses(report.text) == {
        "post-0": "not_article",
        "post-1": "not_article",
        "post-2": "not_article",
    }
    assert report.text is not None
    assert all("larger than 5 MB" in i.reason for i in report.text.items)
    # What the 5 MB cap holds (6 MB measured), never what the pages send (50 MB each).
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.0f} MB"
    assert elapsed < 30


def test_hostile_html_is_stored_inert_and_never_stalls(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 3)
    hostile = article_page(items[0].title, body_html(items[0].article), extra=HOSTILE)
    http_server.route("/post-0", body=hostile, headers=HTML)
    deep = (
        b"<html><body><article>"
        + b"<div>" * 100_000
        + b"deep"
        + b"</div>" * 100_000
        + b"</article></body></html>"
    )
    http_server.route("/post-1", body=deep, headers=HTML)
    entities = "<p>" + "caf&eacute; &amp; na&iuml;ve &#8212; &lt;b&gt; " * 20_000 + "</p>"
    heavy = article_page(items[2].title, body_html(items[2].article), extra=entities)
    http_server.route("/post-2", body=heavy, headers=HTML)
    publish(http_server, feed, items)
    started = time.monotonic()
    report = feed.refresh()
    assert time.monotonic() - started < 30
    assert statuses(report.text) == {"post-0": "ok", "post-1": "not_article", "post-2": "ok"}
    for slug in ("post-0", "post-2"):
        art = by_url(feed, http_server, slug)
        assert_inert(art.page_html)
        assert "alert(" not in art.page_html and "alert(" not in art.text
    assert "&eacute;" not in by_url(feed, http_server, "post-2").text


@pytest.mark.parametrize("content_type", ["video/mp4", "application/pdf"])
def test_a_page_that_is_not_html_is_not_an_article(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer, content_type: str
) -> None:
    feed = make_feed(new_store)
    [post] = posts(shared_dir, 1)
    http_server.route(
        "/post-0", body=b"\x00\x00\x00\x18ftypmp42" + bytes(4000), headers={"Content-Type": content_type}
    )
    publish(http_server, feed, [post])
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "not_article"}
    assert report.text is not None and content_type in report.text.items[0].reason


@pytest.mark.parametrize("status", [404, 410, 403])
def test_a_missing_page_is_not_an_article_and_not_asked_again_next_run(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer, status: int
) -> None:
    feed = make_feed(new_store)
    [post] = posts(shared_dir, 1)
    http_server.route("/post-0", status=status, body=b"gone")
    publish(http_server, feed, [post])
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "not_article"}
    stored = feed.store.pages.page(by_url(feed, http_server, "post-0").id or 0)
    assert stored is not None and str(status) in stored.reason
    assert close_to(stored.next_try, datetime.now(UTC) + fulltext.NOT_ARTICLE_RETRY)
    assert feed.fetch_text(missing=True).items == []
    feed.refresh()
    assert page_requests(http_server) == ["/post-0"]  # once


def test_a_503_fails_with_backoff_and_retry_after_is_honoured(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 2)
    http_server.route("/post-0", status=503, body=b"busy")
    http_server.route("/post-1", status=503, headers={"Retry-After": "21600"})
    publish(http_server, feed, items)
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "failed", "post-1": "failed"}
    first = by_url(feed, http_server, "post-0")
    stored = feed.store.pages.page(first.id or 0)
    assert stored is not None and "503" in stored.reason and stored.attempts == 1
    assert close_to(stored.next_try, datetime.now(UTC) + timedelta(hours=1))
    after = feed.store.pages.page(by_url(feed, http_server, "post-1").id or 0)
    assert after is not None and close_to(after.next_try, datetime.now(UTC) + timedelta(hours=6))
    assert feed.fetch_text(missing=True).items == []  # not due yet
    # Asked for by id, it is fetched now; failing again, it waits twice as long.
    feed.fetch_text([first.uid])
    again = feed.store.pages.page(first.id or 0)
    assert again is not None and again.attempts == 2
    assert close_to(again.next_try, datetime.now(UTC) + timedelta(hours=2))
    # Back up: the article gets its text, and the page is never due again.
    serve_pages(http_server, items[:1])
    assert statuses(feed.fetch_text([first.uid])) == {"post-0": "ok"}
    done = feed.store.pages.page(first.id or 0)
    assert done is not None and done.next_try is None and done.attempts == 1


# -- robots.txt --------------------------------------------------------------------------------------
def test_a_page_robots_txt_disallows_is_never_requested(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 3)
    serve_pages(http_server, items)
    http_server.route(
        "/robots.txt",
        body=b"User-agent: *\nAllow: /\nDisallow: /post-1\n\nUser-agent: OtherBot\nDisallow: /\n",
        headers={"Content-Type": "text/plain"},
    )
    publish(http_server, feed, items)
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "ok", "post-1": "blocked", "post-2": "ok"}
    assert "/post-1" not in page_requests(http_server)
    stored = feed.store.pages.page(by_url(feed, http_server, "post-1").id or 0)
    assert stored is not None and "robots.txt" in stored.reason
    assert close_to(stored.next_try, datetime.now(UTC) + fulltext.BLOCKED_RETRY)


def test_robots_txt_is_fetched_once_per_origin_across_runs(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 4)
    serve_pages(http_server, items)
    http_server.route("/robots.txt", body=b"User-agent: *\nDisallow: /private/\n")
    publish(http_server, feed, items[:2])
    feed.refresh()
    publish(http_server, feed, items)  # two new posts
    report = feed.refresh()
    assert statuses(report.text) == {"post-2": "ok", "post-3": "ok"}
    assert len(http_server.requests_for("/robots.txt")) == 1
    assert feed.store.pages.robots(http_server.base) is not None
    robots = http_server.requests_for("/robots.txt")[0]
    assert robots.headers["user-agent"].startswith("EngineeringFeed/")


def test_an_unreachable_robots_txt_holds_pages_back_for_an_hour_only(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 2)
    serve_pages(http_server, items)
    http_server.route("/robots.txt", status=503)
    publish(http_server, feed, items)
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "failed", "post-1": "failed"}  # not "blocked"
    assert page_requests(http_server) == []  # RFC 9309: unreachable means disallow everything
    assert report.text is not None and "robots.txt could not be fetched" in report.text.items[0].reason
    stored = feed.store.pages.page(by_url(feed, http_server, "post-0").id or 0)
    assert stored is not None and close_to(stored.next_try, datetime.now(UTC) + timedelta(hours=1))


def site_with_posts(
    new_store: NewStore, shared_dir: Path, http_server: LocalHTTPServer, n: int
) -> tuple[Feed, list[Post]]:
    """A store and ``n`` article pages served locally, not yet published in a feed."""
    feed = make_feed(new_store)
    items = posts(shared_dir, n)
    serve_pages(http_server, items)
    return feed, items


def test_a_robots_txt_over_the_cap_is_read_from_its_start(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    """RFC 9309: parse at least the first 500 KiB (it used to block the whole site)."""
    feed, items = site_with_posts(new_store, shared_dir, http_server, 2)
    big = b"User-agent: *\nDisallow: /post-1\n" + b"# padding\n" * 70_000  # ~700 KB
    http_server.route("/robots.txt", body=big, headers={"Content-Type": "text/plain"})
    publish(http_server, feed, items)
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "ok", "post-1": "blocked"}


def test_a_robots_txt_redirect_loop_means_none(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    """RFC 9309 2.3.1.2: not reached within the redirect limit, it is unavailable: allow all."""
    feed, items = site_with_posts(new_store, shared_dir, http_server, 1)
    http_server.redirect("/robots.txt", "/robots-2.txt")
    http_server.redirect("/robots-2.txt", "/robots.txt")
    publish(http_server, feed, items)
    assert statuses(feed.refresh().text) == {"post-0": "ok"}


# -- conditional GET -----------------------------------------------------------------------------------
@pytest.mark.usefixtures("cli_env")
def test_fetch_text_by_id_revalidates_and_a_304_keeps_the_text(
    new_store: NewStore,
    tmp_path: Path,
    shared_dir: Path,
    http_server: LocalHTTPServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed = make_feed(new_store)
    items = posts(shared_dir, 2)
    stamp = http_date(time.time() - 3600)
    serve_pages(http_server, items[:1], etag='"v1"')
    serve_pages(http_server, items[1:], last_modified=stamp)
    publish(http_server, feed, items)
    feed.refresh()
    first, second = by_url(feed, http_server, "post-0"), by_url(feed, http_server, "post-1")
    assert first.text_source == second.text_source == "page"
    db = store_args(feed)
    code, out, err = run_cli(capsys, *db, "fetch-text", first.uid, second.uid, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [i["status"] for i in data["items"]] == ["not_modified", "not_modified"]
    assert data["not_modified"] == 2 and data["ok"] == 0
    assert http_server.requests_for("/post-0")[-1].headers.get("if-none-match") == '"v1"'
    assert http_server.requests_for("/post-1")[-1].headers.get("if-modified-since") == stamp
    for before in (first, second):
        after = feed.article(before.uid)
        assert after is not None and after.text == before.text and after.text_source == "page"
        assert after.page_html == before.page_html
        stored = feed.store.pages.page(before.id or 0)
        assert stored is not None and stored.status == "ok" and stored.next_try is None
    # A changed page is fetched whole and replaces the text.
    changed = article_page(
        items[0].title, body_html(items[0].article), extra="<p>A correction: it was 2019.</p>"
    )
    http_server.route("/post-0", Response(body=changed, headers=HTML, etag='"v2"'))
    code, out, _ = run_cli(capsys, *db, "fetch-text", first.uid, "--json")
    assert json.loads(out)["items"][0] | {"words": 0} == {
        "id": first.uid,
        "url": http_server.url("/post-0"),
        "status": "ok",
        "reason": None,
        "words": 0,
        "changed": True,
    }
    updated = feed.article(first.uid)
    assert updated is not None and "A correction: it was 2019." in updated.text


def test_a_page_that_was_not_an_article_is_asked_again_without_validators(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    [post] = posts(shared_dir, 1)
    paywall = article_page(post.title, "<p>Subscribe to read this story.</p>")
    http_server.route("/post-0", body=paywall, headers=HTML, etag='"paywall"')
    publish(http_server, feed, [post])
    assert statuses(feed.refresh().text) == {"post-0": "not_article"}
    art = by_url(feed, http_server, "post-0")
    again = feed.fetch_text([art.uid])
    # A 304 would say "what you hold is current" of a page we hold nothing of.
    assert "if-none-match" not in http_server.requests_for("/post-0")[-1].headers
    assert statuses(again) == {"post-0": "not_article"}
    stored = feed.store.pages.page(art.id or 0)
    assert stored is not None and stored.status == "not_article"
    assert close_to(stored.next_try, datetime.now(UTC) + fulltext.NOT_ARTICLE_RETRY)


# -- the command line --------------------------------------------------------------------------------
def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a command that fails, whether engfeed reports the error
    or argparse does (a usage error: SystemExit 2)."""
    try:
        return run_cli(capsys, *argv)
    except SystemExit as exc:
        out, err = capsys.readouterr()
        return int(exc.code or 0), out, err


@pytest.mark.usefixtures("cli_env")
def test_fetch_text_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", str(tmp_path / "s.db")]
    assert cli_error(capsys, *db, "fetch-text")[0] == 2
    assert cli_error(capsys, *db, "fetch-text", "abc", "--missing")[0] == 2


@pytest.mark.usefixtures("cli_env")
def test_fetch_text_without_ids_or_missing_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(tmp_path / "s.db")]
    for argv, message in (
        (("fetch-text",), "name articles by id, or use --missing"),
        (("fetch-text", "abc", "--missing"), "give ids or --missing, not both"),
    ):
        code, out, err = cli_error(capsys, *db, *argv)
        assert code != 0 and out == ""
        assert err.strip().splitlines()[-1].endswith(f"error: {message}")
        assert "Traceback" not in err
    code, _, err = run_cli(capsys, *db, "fetch-text", "nope")
    assert code == 1 and err.strip() == "engfeed: error: no such article: nope"


@pytest.mark.usefixtures("cli_env")
def test_fetch_text_missing_json_shape(
    new_store: NewStore,
    tmp_path: Path,
    shared_dir: Path,
    http_server: LocalHTTPServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed = make_feed(new_store, fulltext=False)
    items = posts(shared_dir, 5)
    serve_pages(http_server, items[:1])
    http_server.route("/post-1", status=404)
    http_server.route("/post-2", status=503)
    http_server.route("/robots.txt", body=b"User-agent: *\nDisallow: /post-3\n")
    serve_pages(http_server, items[4:])
    publish(http_server, feed, items)
    feed.refresh()
    db = store_args(feed)
    code, out, err = run_cli(capsys, *db, "fetch-text", "--missing", "--limit", "4", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {
        "pages",
        "ok",
        "not_modified",
        "not_article",
        "blocked",
        "failed",
        "remaining",
        "items",
    }
    assert (data["pages"], data["ok"], data["not_modified"], data["not_article"]) == (4, 1, 0, 1)
    assert (data["blocked"], data["failed"], data["remaining"]) == (1, 1, 1)
    for item in data["items"]:
        assert set(item) == {"id", "url", "status", "reason", "words", "changed"}
        assert isinstance(item["words"], int) and isinstance(item["changed"], bool)
    by_slug = {i["url"].rsplit("/", 1)[-1]: i for i in data["items"]}
    assert by_slug["post-0"]["status"] == "ok" and by_slug["post-0"]["changed"] is True
    assert by_slug["post-0"]["words"] > 300 and by_slug["post-0"]["reason"] is None
    assert by_slug["post-1"]["status"] == "not_article" and "404" in by_slug["post-1"]["reason"]
    assert by_slug["post-2"]["status"] == "failed" and by_slug["post-3"]["status"] == "blocked"
    assert by_slug["post-0"]["id"] == by_url(feed, http_server, "post-0").uid
    # The human form: a table and one summary line.
    code, out, _ = run_cli(capsys, *db, "fetch-text", "--missing")
    assert code == 0 and out.strip().splitlines()[-1] == "Full text: 1 page: 1 with text"
    code, out, _ = run_cli(capsys, *db, "fetch-text", "--missing", "--json")
    assert json.loads(out)["pages"] == 0 and json.loads(out)["items"] == []


@pytest.mark.usefixtures("cli_env")
def test_refresh_no_text_skips_the_pages(
    new_store: NewStore,
    tmp_path: Path,
    shared_dir: Path,
    http_server: LocalHTTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGFEED_FULLTEXT", "1")
    items = posts(shared_dir, 2)
    serve_pages(http_server, items)
    feed = make_feed(new_store)
    db = store_args(feed)
    publish(http_server, feed, items[:1])
    code, _, err = run_cli(capsys, *db, "refresh", "--no-text")
    assert code == 0, err
    assert page_requests(http_server) == [] and http_server.requests_for("/robots.txt") == []
    publish(http_server, feed, items)
    code, out, err = run_cli(capsys, *db, "refresh")
    assert code == 0, err
    assert page_requests(http_server) == ["/post-0", "/post-1"]
    assert "Full text: 2 pages: 2 with text" in out


# -- address policy ------------------------------------------------------------------------------------


def test_a_page_on_a_metadata_address_is_refused_without_a_connection(
    new_store: NewStore, tmp_path: Path, shared_dir: Path, loopback_only: list[str]
) -> None:
    links = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://evil.test/post",  # a name that resolves to the metadata address
        "http://metadata.google.internal/computeMetadata/v1/",
    ]
    [article] = real_articles(shared_dir, ARTICLES[:1])
    items = "".join(
        f"<item><title>Post {i}</title><link>{link}</link>"
        f"<description>{escape(teaser(article))}</description></item>"
        for i, link in enumerate(links)
    )
    path = tmp_path / "local.xml"
    path.write_text(
        f'<rss version="2.0"><channel><title>Local</title>{items}</channel></rss>', encoding="utf-8"
    )
    config = replace(CONFIG, resolver=fake_resolver({"evil.test": ["169.254.169.254"]}))
    feed = make_feed(new_store, config)
    feed.import_paths([path])
    report = feed.fetch_text(missing=True)
    assert len(report.items) == 3
    assert all(i.status not in ("ok", "not_modified") for i in report.items)
    reasons = " | ".join(i.reason for i in report.items)
    assert reasons.count("a link-local address") == 2 and "cloud metadata service" in reasons
    assert all(a.text_source == "feed" for a in feed.articles(limit=10).articles)


def test_a_page_redirecting_to_a_metadata_address_is_refused(
    new_store: NewStore,
    tmp_path: Path,
    shared_dir: Path,
    http_server: LocalHTTPServer,
    loopback_only: list[str],
) -> None:
    feed = make_feed(new_store)
    [post] = posts(shared_dir, 1)
    http_server.redirect("/post-0", "http://169.254.169.254/latest/meta-data/", status=302)
    publish(http_server, feed, [post])
    report = feed.refresh()
    assert statuses(report.text) == {"post-0": "failed"}
    assert report.text is not None and "169.254.169.254, a link-local address" in report.text.items[0].reason
    assert by_url(feed, http_server, "post-0").text_source == "feed"
