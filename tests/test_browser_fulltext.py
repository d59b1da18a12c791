"""The article page of a teaser feed in real Chromium: the text extracted from the original
page, the deep summary, and "Start notes from the summary"; axe and screenshots in both
themes, on a phone and a desktop.

The store is built by a real refresh with full text on: a teaser feed and its article page
(a real article of ../shared, read in place, wrapped in boilerplate) served from 127.0.0.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import (
    DESKTOP,
    PHONE,
    Served,
    assert_no_axe_violations,
    browser_marks,
    chromium_missing_reason,
    horizontal_overflow,
    screenshot,
    serving,
    subprocess_env,
)
from engfeed.feed import Feed
from engfeed.fetch import FetchConfig
from engfeed.parse import parse_feed
from engfeed.store import Store
from httpserver import running_server

pytestmark = browser_marks()

if chromium_missing_reason() is None:
    from playwright.sync_api import expect

ARTICLE_FEED = "feeds/cloudflare-blog-2023-01.xml"
ARTICLE_TITLE = "Helping build a safer Internet by measuring BGP RPKI Route Origin Validation"
BOILERPLATE = "Accept all cookies to continue"


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang=en><head><title>" + title + "</title></head><body>"
        "<nav><a href='/'>Home</a> <a href='/careers'>Careers</a></nav>"
        f"<div class='cookie-banner'>{BOILERPLATE} <button>OK</button></div>"
        f"<main><article><h1>{title}</h1><div class='share'>Share on X · Share on LinkedIn</div>{body}"
        "</article><aside><h3>Related posts</h3><ul><li><a href='/p/1'>Another post</a></li></ul></aside>"
        "</main><footer>© 2024 Example, Inc. Privacy · Terms</footer></body></html>"
    ).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Iterator[tuple[Served, str]]:
    home = tmp_path_factory.mktemp("fulltext")
    db = home / "engfeed.db"
    [art] = [
        a
        for a in parse_feed((shared_dir / ARTICLE_FEED).read_bytes(), url="").articles
        if a.title == ARTICLE_TITLE
    ]
    with running_server() as srv:
        srv.route("/post", body=_page(art.title, art.content_html), headers={"Content-Type": "text/html"})
        item = (
            f"<item><title>{ARTICLE_TITLE}</title><link>{srv.url('/post')}</link><guid>p1</guid>"
            "<description>How much of the Internet is protected from route leaks?</description>"
            "<pubDate>Tue, 03 Jan 2023 14:00:00 GMT</pubDate></item>"
        )
        channel = f"<title>Cloudflare</title><link>{srv.url('/')}</link>{item}"
        rss = f"<rss version='2.0'><channel>{channel}</channel></rss>"
        srv.route("/feed.xml", body=rss.encode(), headers={"Content-Type": "application/rss+xml"})
        feed = Feed(Store(db), fetch_config=FetchConfig(total_timeout=10), fulltext=True)
        try:
            feed.store.add_source("Cloudflare", srv.url("/feed.xml"))
            report = feed.refresh()
            assert report.text is not None and report.text.count("ok") == 1, report.text
            uid = feed.articles().articles[0].uid
        finally:
            feed.close()
    with serving(db, subprocess_env(home, ENGFEED_EMBED="0"), home / "serve.log") as s:
        yield s, uid


def test_article_page_shows_extracted_text_and_summary(served: tuple[Served, str], new_page: Any) -> None:
    site, uid = served
    page = new_page()
    page.goto(site.url(f"/a/{uid}"))
    note = page.locator("[data-text-source=page]")
    expect(note).to_contain_text("Text extracted from the original page")
    body = page.locator("[data-article-body]")
    expect(body).to_contain_text("Route Origin Validation")
    assert BOILERPLATE not in body.inner_text()
    assert page.locator("[data-article-body] h1").count() == 0  # the title is not repeated
    images = page.locator("[data-article-body] img")
    assert images.count() > 0
    assert {images.nth(i).get_attribute("loading") for i in range(images.count())} == {"lazy"}
    links = page.locator("[data-article-body] a[href]")
    assert links.count() > 0
    rels = {links.nth(i).get_attribute("rel") or "" for i in range(links.count())}
    assert all("noopener" in r and "nofollow" in r for r in rels)
    assert page.locator("[data-article-body] script, [data-article-body] [onerror]").count() == 0

    summary = page.locator("[data-summary]")
    expect(summary.get_by_role("heading", name="Summary")).to_be_visible()
    takeaways = page.locator("[data-summary-takeaways] li")
    assert 3 <= takeaways.count() <= 6
    text = body.inner_text()
    squashed = " ".join(text.split())
    for i in range(takeaways.count()):  # extractive: every takeaway is the article's own sentence
        assert " ".join(takeaways.nth(i).inner_text().split()) in squashed
    api = site.get_json(f"/api/articles/{uid}")
    assert api["text_source"] == "page"
    assert api["summary"]["method"] == "extractive" and api["summary"]["text_source"] == "page"
    assert len(api["summary"]["sections"]) >= 2


def test_start_notes_from_the_summary(served: tuple[Served, str], new_page: Any) -> None:
    site, uid = served
    page = new_page()
    page.goto(site.url(f"/a/{uid}"))
    expect(page.locator("#note-from-summary")).to_have_count(0)  # only once saved
    page.locator("[data-article] [data-save-toggle]").first.click()
    expect(page.locator("[data-article] [data-save-toggle]").first).to_have_attribute("aria-pressed", "true")
    page.reload()
    expect(page.locator("#note-from-summary")).to_be_visible()
    page.locator("#note-from-summary").click()
    area = page.locator("#note-text")
    takeaways = site.get_json(f"/api/articles/{uid}")["summary"]["takeaways"]
    expect(area).to_have_value(re.compile(re.escape(takeaways[0][:40])))
    assert site.get_json(f"/api/articles/{uid}")["note"] is None  # nothing saved until the reader saves
    area.fill(area.input_value() + "\nMy own thought.")
    page.locator("#note-save").click()
    expect(page.locator("#note-preview")).to_contain_text("My own thought.")
    note = site.get_json(f"/api/articles/{uid}")["note"]
    assert note.startswith(api_overview(site, uid)[:30]) and "1. " in note
    page.reload()
    expect(page.locator("#note-from-summary")).to_have_count(0)  # a note exists now


def api_overview(site: Served, uid: str) -> str:
    overview: str = site.get_json(f"/api/articles/{uid}")["summary"]["overview"]
    return overview


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [
        ("fulltext-summary-desktop-light", DESKTOP, "light"),
        ("fulltext-summary-desktop-dark", DESKTOP, "dark"),
        ("fulltext-summary-phone-light", PHONE, "light"),
        ("fulltext-summary-phone-dark", PHONE, "dark"),
    ],
)
def test_article_page_looks_right_and_passes_axe(
    served: tuple[Served, str], new_page: Any, name: str, viewport: dict[str, int], scheme: str
) -> None:
    site, uid = served
    phone = viewport is PHONE
    page = new_page(viewport=viewport, color_scheme=scheme, is_mobile=phone, has_touch=phone, bypass_csp=True)
    page.goto(site.url(f"/a/{uid}"))
    page.locator("[data-summary-sections] > summary").click()  # open "By section" for the picture
    assert horizontal_overflow(page) == []
    screenshot(page, name, max_height=4000)  # header, summary, note and the start of the text
    assert_no_axe_violations(page)
