"""End to end in real headless Chromium: ``engfeed serve`` as a subprocess over a store filled
from local feeds, driven through Playwright.

The store: two generated blogs served from a local HTTP server and fetched (a refresh
through the ``Feed`` facade, in this process), a few real feed snapshots from
``../shared/feeds`` imported in place (when present), and a third blog that is subscribed
but never fetched until the test of the Sources page's "Refresh now" button fills the page
with it. ``engfeed serve`` then runs as a subprocess on a free port.

Screenshots go to ``artifacts/screenshots/``; the accessibility test runs axe-core (from
``.cache/npm``, see ``browser_support.AXE_JS``) and fails on serious or critical issues.

Needs ``/usr/bin/chromium`` (CI: ``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from browser_support import (
    BUNDLED_ANGLES,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    Served,
    assert_no_axe_violations,
    axe_missing_reason,
    chromium_missing_reason,
    describe_violations,
    horizontal_overflow,
    rss_items,
    run_axe,
    screenshot,
    serving,
    subprocess_env,
)
from conftest import SHARED
from engfeed.feed import Feed
from feedgen import rss
from httpserver import LocalHTTPServer, running_server

_missing = chromium_missing_reason()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(_missing is not None, reason=_missing or ""),
    # One server and one browser for the module when pytest-xdist runs with --dist loadgroup.
    pytest.mark.xdist_group("browser"),
]

if _missing is None:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, expect, sync_playwright

NOW = datetime.now(UTC).replace(microsecond=0)
REAL_FEEDS = ("rakuten-engineering-blog.xml", "github-blog-2023-trimmed.xml")  # small: quick to embed
RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}
SEARCH_QUERY = "keeping services up when a region fails"
NEW_TITLE = "Initech moved its billing ledger to event sourcing"

GLOBEX_ITEMS = [
    (
        "globex-sharding",
        "Sharding the orders database without downtime",
        "We split one large Postgres primary into sixteen shards by customer id. Writes moved shard by "
        "shard behind a routing layer, and zero downtime was the rule throughout.",
        NOW - timedelta(hours=3),
    ),
    (
        "globex-postmortem",
        "Postmortem: the day our cache stampeded",
        "A cache flush sent every request to the database at once. The incident lasted forty minutes; "
        "request coalescing and load shedding now stop a cascading failure like it.",
        NOW - timedelta(days=1, hours=3),
    ),
    (
        "globex-gpu",
        "Doubling GPU inference throughput with dynamic batching",
        "Batching requests on the GPU doubled throughput and cut p99 latency by a third. Profiling with "
        "flame graphs showed the bottleneck was the tokenizer, not the model.",
        NOW - timedelta(days=2, hours=3),
    ),
    (
        "globex-frontend",
        "How we made the checkout page load twice as fast",
        "We shipped less JavaScript, inlined critical CSS and lazy-loaded images below the fold. Load time "
        "on a mid-range phone fell from 4.1 to 1.9 seconds.",
        NOW - timedelta(days=3, hours=3),
    ),
]
INITECH_ITEMS = [
    (
        "initech-ledger",
        NEW_TITLE,
        "The billing ledger is now an append-only log of events; balances are projections rebuilt from it, "
        "and replication keeps a warm copy in a second region.",
        NOW - timedelta(minutes=10),
    )
]


# -- the running site ----------------------------------------------------------------------------
@dataclass
class Site:
    served: Served
    feeds: LocalHTTPServer
    initech_path: str

    def url(self, path: str = "/") -> str:
        return self.served.url(path)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("browser")
    db = home / "engfeed.db"
    with pytest.MonkeyPatch.context() as mp, running_server(mp) as feeds:
        acme = feeds.route(
            "/acme.xml",
            body=rss(
                8, title="Acme Engineering", site="https://acme.example", start=NOW - timedelta(hours=1)
            ),
            headers=RSS_TYPE,
        )
        globex = feeds.route(
            "/globex.xml",
            body=rss_items("Globex Engineering", "https://globex.example", GLOBEX_ITEMS),
            headers=RSS_TYPE,
        )
        gone = feeds.route("/umbrella.xml", status=404, body=b"not found")
        initech = feeds.route(
            "/initech.xml",
            body=rss_items("Initech Engineering", "https://initech.example", INITECH_ITEMS),
            headers=RSS_TYPE,
        )

        # Built in this process (one model load) rather than with four `engfeed` commands, on a
        # thread of its own: the refresh runs an event loop, and Playwright's may be running here.
        def build() -> None:
            feed = Feed.open(db, angles_file=BUNDLED_ANGLES)
            try:
                feed.add_source(acme, "Acme", discover=False)
                feed.add_source(globex, "Globex", discover=False)
                feed.add_source(gone, "Umbrella", discover=False)  # fails: the page shows a hint
                report = feed.refresh()
                assert [r.name for r in report.failed] == ["Umbrella"], report.to_json()
                assert report.total("new") == 8 + len(GLOBEX_ITEMS)
                # Subscribed but not fetched yet: test_refresh_now_fills_the_page fetches it.
                feed.add_source(initech, "Initech", discover=False)
                real = [SHARED / "feeds" / n for n in REAL_FEEDS if (SHARED / "feeds" / n).is_file()]
                if real:
                    feed.import_paths(real)
            finally:
                feed.close()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(build).result()
        with serving(db, subprocess_env(home), home / "serve.log") as served:
            yield Site(served, feeds, "/initech.xml")


# -- the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


def stub_external(route: Route) -> None:
    """The tests never leave the machine: any other origin gets a tiny stand-in page."""
    route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>Original</title><p>ok")


@pytest.fixture
def new_context(browser: Browser, site: Site) -> Iterator[Any]:
    """A factory of isolated browser contexts (closed after the test) that reach only the site."""
    made: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        ctx = browser.new_context(**options)
        ctx.set_default_timeout(15_000)
        ctx.route(re.compile(r"^(?!" + re.escape(site.url("")) + r")https?://"), stub_external)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def page(new_context: Any) -> Page:
    p: Page = new_context().new_page()
    return p


def card_sources(page: Page) -> list[str]:
    return page.locator("#cards [data-card] [data-card-source]").evaluate_all(
        "els => els.map(e => e.getAttribute('data-card-source'))"
    )


def count_of(page: Page) -> int:
    return int(page.locator("#results-count").get_attribute("data-count") or "-1")


# -- the feed page ---------------------------------------------------------------------------------
def test_home_page_shows_the_feed(page: Page, site: Site) -> None:
    page.goto(site.url("/"))
    expect(page).to_have_title("Engineering Feed")
    expect(page.locator("h1")).to_have_text("Engineering Feed")
    total = site.served.get_json("/api/articles?limit=1")["total"]
    assert total >= 12
    expect(page.locator("#results-count")).to_have_text(f"{total} articles")
    cards = page.locator("#cards [data-card]")
    assert cards.count() == min(total, 30)
    first = cards.first
    expect(first.locator("[data-card-link]")).not_to_be_empty()
    expect(first.locator("[data-company]")).not_to_be_empty()
    expect(first.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    # newest first: the generated blogs are the newest articles
    assert card_sources(page)[0] in {"Acme", "Initech"}
    expect(page.locator("[data-angle]").first).to_contain_text("Useful angle:")
    expect(page.locator("#q")).to_have_attribute("placeholder", re.compile("concept"))
    # JavaScript ran: the theme toggle and the keyboard help are shown
    expect(page.locator("#theme-toggle")).to_be_visible()
    expect(page.locator("#search-hint [data-keys-help]")).to_be_visible()
    # the theme toggle overrides the system scheme, and the choice survives a reload
    toggle = page.locator("#theme-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    page.reload()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(17, 19, 22)"
    expect(page.locator("#theme-toggle")).to_have_attribute("aria-pressed", "true")


def test_load_more_appends_in_place(page: Page, site: Site) -> None:
    page.goto(site.url("/?limit=5"))
    page.evaluate("window.__same_document = true")
    page.locator("#load-more").click()
    expect(page.locator("#cards [data-card]")).to_have_count(10)
    assert page.evaluate("window.__same_document") is True  # appended in place, no navigation
    uids = page.locator("#cards [data-card]").evaluate_all("els => els.map(e => e.dataset.uid)")
    assert len(uids) == len(set(uids))
    expect(page.locator("#search-status")).to_have_text("Loaded 5 more")
    # the next "Load more" continues after the tenth article
    expect(page.locator("#load-more")).to_have_attribute("href", re.compile(r"cursor="))


def test_context_search_highlights_the_passage(page: Page, site: Site) -> None:
    page.goto(site.url("/"))
    search = page.locator("#q")
    search.fill(SEARCH_QUERY)
    search.press("Enter")
    page.wait_for_url(re.compile(r"[?&]q="))
    assert parse_qs(urlsplit(page.url).query)["q"] == [SEARCH_QUERY]
    count = page.locator("#results-count")
    expect(count).to_have_text(re.compile(rf"^\d+ match(es)? for “{re.escape(SEARCH_QUERY)}”$"))
    n = count_of(page)
    assert n >= 1
    expect(page.locator("#cards [data-card]")).to_have_count(n)
    titles = page.locator("#cards [data-card-link]").all_inner_texts()
    assert any("across regions" in t for t in titles[:3]), titles
    top = page.locator("#cards [data-card]").filter(has_text="across regions").first
    expect(top.locator("[data-context] mark").first).to_be_visible()
    marked = top.locator("[data-context] mark").all_inner_texts()
    assert any(re.search(r"region|fail", m, re.I) for m in marked), marked
    # "Why this result" opens to show the scores
    top.locator("[data-why] summary").click()
    expect(top.locator("[data-why] dd").first).to_be_visible()
    expect(page).to_have_title(f"{SEARCH_QUERY} — Engineering Feed")
    screenshot(page, "search-desktop-light")


def test_instant_search_updates_results_without_reloading(page: Page, site: Site) -> None:
    page.goto(site.url("/"))
    page.evaluate("window.__same_document = true")
    page.locator("#q").press_sequentially("database sharding", delay=10)
    expect(page.locator("#results-count")).to_contain_text("for “database sharding”")
    expect(page.locator("#cards [data-card]").first).to_contain_text("Sharding")
    assert page.evaluate("window.__same_document") is True  # no navigation happened
    assert "q=database+sharding" in page.url  # the address bar follows the view
    expect(page.locator("#search-status")).to_contain_text("for “database sharding”")


def test_filter_by_company(page: Page, site: Site) -> None:
    page.goto(site.url("/"))
    link = page.locator('[data-filter-source="Globex"]')
    expected = int(link.locator(".filter__count").inner_text())
    link.click()
    page.wait_for_url(re.compile(r"source=Globex"))
    expect(page.locator('[data-filter-source="Globex"]')).to_have_attribute("aria-current", "true")
    assert count_of(page) == expected == len(GLOBEX_ITEMS)
    assert card_sources(page) == ["Globex"] * expected
    expect(page.locator("[data-active-filters]")).to_contain_text("Globex")
    # the company name on a card narrows the view too; clicking the chip clears it
    page.locator('[data-remove-filter="company"]').click()
    page.wait_for_url(lambda u: "source=" not in u)
    assert set(card_sources(page)) > {"Globex"}
    page.locator('#cards [data-card-source="Acme"]').first.click()
    page.wait_for_url(re.compile(r"source=Acme"))
    assert set(card_sources(page)) == {"Acme"}


def test_filter_by_angle(page: Page, site: Site) -> None:
    page.goto(site.url("/"))
    link = page.locator('[data-filter-angle="systems performance"]')
    expected = int(link.locator(".filter__count").inner_text())
    assert expected >= 1
    link.click()
    page.wait_for_url(re.compile(r"angle=systems"))
    expect(page.locator('[data-filter-angle="systems performance"]')).to_have_attribute(
        "aria-current", "true"
    )
    expect(page.locator("[data-active-filters]")).to_contain_text("angle: systems performance")
    assert count_of(page) == expected
    api = site.served.get_json("/api/articles?angle=systems+performance&limit=100")
    shown = page.locator("#cards [data-card]").evaluate_all("els => els.map(e => e.dataset.uid)")
    assert shown == [a["id"] for a in api["articles"]][: len(shown)]
    assert all(any(m["name"] == "systems performance" for m in a["angles"]) for a in api["articles"])
    # and with a company on top: every card is that company's
    page.locator('[data-filter-source="Globex"]').click()
    page.wait_for_url(re.compile(r"source=Globex"))
    assert set(card_sources(page)) == {"Globex"}
    assert "angle=systems" in page.url


def test_article_page_with_related(page: Page, site: Site) -> None:
    page.goto(site.url("/?source=Globex"))
    card = page.locator('#cards [data-card]:has-text("GPU inference")')
    card.locator("[data-card-details]").click()
    page.wait_for_url(re.compile(r"/a/"))
    expect(page.locator("h1#article-title")).to_have_text(
        "Doubling GPU inference throughput with dynamic batching"
    )
    expect(page).to_have_title(re.compile(r"^Doubling GPU inference .* — Engineering Feed$"))
    expect(page.locator("[data-article-body]")).to_contain_text("tokenizer")
    expect(page.locator("#read-original")).to_have_attribute("href", "https://globex.example/globex-gpu")
    expect(page.locator(".article__angles [data-angle='systems performance']")).to_be_visible()
    related = page.locator("[data-related] [data-card]")
    expect(related.first).to_be_visible()
    assert related.count() >= 2
    titles = related.locator("[data-card-link]").all_inner_texts()
    assert "Doubling GPU inference throughput with dynamic batching" not in titles
    screenshot(page, "article-desktop-light")
    # the related list leads on to other articles' pages, and the breadcrumb goes home
    related.first.locator("[data-card-link]").click()
    page.wait_for_load_state()
    page.go_back()
    page.locator("#back-to-feed").click()
    page.wait_for_url(site.url("/"))


def test_keyboard_shortcuts(page: Page, site: Site) -> None:
    page.goto(site.url("/"))
    cards = page.locator("#cards [data-card]")
    search = page.locator("#q")
    page.keyboard.press("Tab")  # the first stop is the skip link, shown when focused
    skip = page.locator("#skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    page.locator("h1").click()  # focus on the page, not in a field
    page.keyboard.press("/")
    expect(search).to_be_focused()
    page.keyboard.type("j")  # in the search box, j is a letter, not a move
    expect(search).to_have_value("j")
    expect(page.locator("[data-card].is-current")).to_have_count(0)
    search.fill("")
    page.keyboard.press("Escape")
    expect(search).not_to_be_focused()
    page.keyboard.press("j")
    expect(cards.nth(0)).to_be_focused()
    expect(cards.nth(0)).to_have_class(re.compile(r"\bis-current\b"))
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(cards.nth(2)).to_be_focused()
    expect(page.locator("[data-card].is-current")).to_have_count(1)
    page.keyboard.press("k")
    expect(cards.nth(1)).to_be_focused()
    href = cards.nth(1).locator("[data-card-link]").get_attribute("href")
    assert href
    page.keyboard.press("o")  # opens the current card (the original article, stubbed here)
    page.wait_for_url(lambda u: u == href)
    expect(page).to_have_title("Original")


def test_works_without_javascript(new_context: Any, site: Site) -> None:
    page = new_context(java_script_enabled=False).new_page()
    page.goto(site.url("/"))
    expect(page.locator("#theme-toggle")).to_be_hidden()  # enhancement only
    expect(page.locator("#cards [data-card]").first).to_be_visible()
    expect(page.locator("#filters")).to_have_attribute("open", "")
    page.locator("#q").fill(SEARCH_QUERY)
    page.locator("#search-submit").click()
    page.wait_for_url(re.compile(r"[?&]q="))
    expect(page.locator("#results-count")).to_contain_text(f"for “{SEARCH_QUERY}”")
    expect(page.locator("#cards [data-card] [data-context] mark").first).to_be_visible()
    # filters and "load more" are plain links
    page.locator('[data-filter-source="Acme"]').click()
    page.wait_for_url(re.compile(r"source=Acme"))
    assert set(card_sources(page)) == {"Acme"}
    assert "q=" in page.url
    page.goto(site.url("/?limit=5"))
    page.locator("#load-more").click()
    page.wait_for_url(re.compile(r"cursor="))
    expect(page.locator("#newest")).to_be_visible()
    expect(page.locator("#cards [data-card]")).to_have_count(5)


def test_refresh_now_fills_the_page(new_context: Any, site: Site) -> None:
    page = new_context().new_page()
    page.goto(site.url("/"))
    expect(page.locator("#cards")).not_to_contain_text(NEW_TITLE)
    page.locator("#nav-sources").click()
    page.wait_for_url(site.url("/sources"))
    initech = page.locator('[data-source="Initech"]')
    expect(initech).to_have_attribute("data-health", "never fetched")
    umbrella = page.locator('[data-source="Umbrella"]')
    expect(umbrella).to_have_attribute("data-health", "failing")
    expect(umbrella.locator("[data-hint]")).to_be_visible()
    assert site.feeds.requests_for(site.initech_path) == []
    screenshot(page, "sources-desktop-light")
    page.locator("#refresh-now").click()  # a POST carrying the CSRF token
    page.wait_for_url(re.compile(r"/sources\?refresh=(started|running)"))
    expect(page.locator("#refresh-message")).to_contain_text("Refresh")
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        state = page.locator("#refresh-state").get_attribute("data-refresh-state")
        if state == "idle" and initech.get_attribute("data-health") == "ok":
            break
        time.sleep(0.3)
        page.reload()
    expect(initech).to_have_attribute("data-health", "ok")
    expect(page.locator("#refresh-state")).to_contain_text("Last refresh finished")
    assert len(site.feeds.requests_for(site.initech_path)) >= 1
    page.locator("#nav-feed").click()
    page.wait_for_url(site.url("/"))
    first = page.locator("#cards [data-card]").first
    expect(first.locator("[data-card-link]")).to_have_text(NEW_TITLE)
    expect(first.locator("[data-card-source]")).to_have_text("Initech")
    expect(page.locator('[data-filter-source="Initech"]')).to_be_visible()


def test_refresh_without_the_form_token_is_refused(page: Page, site: Site) -> None:
    page.goto(site.url("/sources"))
    page.locator("#refresh-form input[name=csrf_token]").evaluate("el => el.value = 'forged'")
    page.locator("#refresh-now").click()
    expect(page.locator("h1")).to_have_text("Refresh refused")


# -- screenshots and layout ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [
        ("home-desktop-light", DESKTOP, "light"),
        ("home-desktop-dark", DESKTOP, "dark"),
        ("home-phone-light", PHONE, "light"),
        ("home-phone-dark", PHONE, "dark"),
    ],
)
def test_home_screenshots_and_no_sideways_scroll(
    new_context: Any, site: Site, name: str, viewport: dict[str, int], scheme: str
) -> None:
    phone = viewport is PHONE
    ctx = new_context(viewport=viewport, color_scheme=scheme, is_mobile=phone, has_touch=phone)
    page = ctx.new_page()
    page.goto(site.url("/?limit=8"))
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (bg == "rgb(17, 19, 22)") == (scheme == "dark"), bg
    assert horizontal_overflow(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    # the search icon sits inside the search box (the row wraps on a phone)
    icon, box = page.locator(".search__icon").bounding_box(), page.locator("#q").bounding_box()
    assert icon and box
    assert box["y"] <= icon["y"] and icon["y"] + icon["height"] <= box["y"] + box["height"], (icon, box)
    screenshot(page, name)
    if phone:
        # the filters fold away on a phone, and open on demand
        expect(page.locator("#filters")).not_to_have_attribute("open", "")
        expect(page.locator('[data-filter-source="Acme"]')).to_be_hidden()
        page.locator("#filters summary").click()
        expect(page.locator('[data-filter-source="Acme"]')).to_be_visible()
        assert horizontal_overflow(page) == []
    else:
        # an active filter's highlight is not clipped by the scrolling side panel
        page.goto(site.url("/?source=Acme&limit=8"))
        active = page.locator('[data-filter-source="Acme"]').bounding_box()
        panel = page.locator("#filters").evaluate(
            "el => { const r = el.getBoundingClientRect(); return [r.left + el.clientLeft, "
            "r.left + el.clientLeft + el.clientWidth]; }"
        )
        assert active and panel[0] <= active["x"] and active["x"] + active["width"] <= panel[1], (
            active,
            panel,
        )


def test_search_and_article_fit_a_phone(new_context: Any, site: Site) -> None:
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True, color_scheme="dark").new_page()
    page.goto(site.url("/?q=" + SEARCH_QUERY.replace(" ", "+")))
    page.locator("[data-why] summary").first.click()
    assert horizontal_overflow(page) == []
    screenshot(page, "search-phone-dark")
    for path in ("/sources", page.locator("[data-card-details]").first.get_attribute("href") or "/"):
        page.goto(site.url(path))
        assert horizontal_overflow(page) == [], path
    screenshot(page, "article-phone-dark")


# -- accessibility ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def axe() -> None:
    """Skips (before the site is built) when axe-core is not installed."""
    missing = axe_missing_reason()
    if missing:
        pytest.skip(missing)


@pytest.mark.parametrize(
    ("name", "path", "scheme"),
    [
        ("home light", "/", "light"),
        ("home dark", "/", "dark"),
        ("search", "/?q=" + SEARCH_QUERY.replace(" ", "+"), "light"),
        ("search dark", "/?q=" + SEARCH_QUERY.replace(" ", "+"), "dark"),
        ("article", None, "light"),
        ("sources", "/sources", "light"),
        ("sources dark", "/sources", "dark"),
    ],
)
def test_axe_finds_no_serious_violations(
    axe: None, new_context: Any, site: Site, name: str, path: str | None, scheme: str
) -> None:
    ctx = new_context(color_scheme=scheme, bypass_csp=True)  # axe is injected as an inline script
    page = ctx.new_page()
    if path is None:
        path = site.served.get_json("/api/articles?source=Globex&limit=1")["articles"][0]["id"]
        path = f"/a/{path}"
    page.goto(site.url(path))
    if "q=" in path:
        page.locator("[data-why] summary").first.click()  # check the opened details too
    result = run_axe(page)
    assert result["passes"] > 10  # axe really ran
    violations = result["violations"]
    print(
        f"\naxe on {name} ({path}): {result['passes']} rules pass, {len(violations)} violated, "
        f"needs review: {', '.join(result['incomplete']) or 'none'}"
    )
    if violations:
        print(describe_violations(violations))
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, describe_violations(serious)


# -- a broken angles file and undated articles (hardening) ------------------------------------------
UNDATED_RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Hooli Notes</title>'
    b"<link>https://hooli.example/</link>"
    b"<item><title>Hooli: dated post on tail latency</title><link>https://hooli.example/dated</link>"
    b"<pubDate>Mon, 03 Mar 2025 10:00:00 GMT</pubDate><description>p99 and queues.</description></item>"
    b"<item><title>Hooli: an undated note on caching</title><link>https://hooli.example/undated</link>"
    b"<description>Caches in front of the ledger.</description></item></channel></rss>"
)
TWEETS_RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Hooli Tweets</title>'
    b"<link>https://tweets.hooli.example/</link>"
    + b"".join(
        f"<item><title>Hooli tweet {i}: we shipped a thing</title><link>https://tweets.hooli.example/{i}</link>"
        "<description>A short update.</description></item>".encode()
        for i in range(2)
    )
    + b"</channel></rss>"
)


@pytest.fixture(scope="module")
def warned_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``engfeed serve`` with an angles file that does not parse, over undated articles."""
    home = tmp_path_factory.mktemp("warned")
    db = home / "engfeed.db"
    (home / "hooli.xml").write_bytes(UNDATED_RSS)
    (home / "tweets.xml").write_bytes(TWEETS_RSS)
    feed = Feed.open(db, embed=False)
    try:
        feed.import_paths([home / "hooli.xml", home / "tweets.xml"])
    finally:
        feed.close()
    broken = home / "angles.toml"
    broken.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    env = subprocess_env(home, ENGFEED_ANGLES=str(broken), ENGFEED_EMBED="0")
    with serving(db, env, home / "serve.log") as served:
        yield served


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [("warning-desktop-light", DESKTOP, "light"), ("warning-phone-dark", PHONE, "dark")],
)
def test_broken_angles_warn_and_undated_articles_say_so(
    browser: Browser, warned_site: Served, name: str, viewport: dict[str, int], scheme: str
) -> None:
    phone = viewport is PHONE
    ctx = browser.new_context(
        viewport=viewport, color_scheme=scheme, is_mobile=phone, has_touch=phone, bypass_csp=True
    )
    try:
        page = ctx.new_page()
        page.goto(warned_site.url("/"))
        warning = page.locator("#config-warning")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("Using the bundled angles")
        titles = page.locator("#cards [data-card] h3").all_inner_texts()
        assert titles[0] == "Hooli: dated post on tail latency", titles  # undated ones never float up
        dates = page.locator("#cards [data-card] [data-date]").all_inner_texts()
        assert dates[-2:] == ["Date unknown", "Date unknown"], dates
        assert "(approx.)" in page.locator("#cards").inner_text()  # the backfilled one, dated below
        assert horizontal_overflow(page) == []
        screenshot(page, name)
        assert_no_axe_violations(page)
    finally:
        ctx.close()
