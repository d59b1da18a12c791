"""The Engineering Feed page: content, search, filters, pagination, article and sources pages,
refresh (CSRF, scheduling), security headers, escaping, and "no query string gives a 500".

The store is hand-written (``build_feed``); ``test_web_api.py`` and ``test_web_feeds.py``
import the builders from here.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from engfeed.feed import Feed
from engfeed.models import AngleMatch, Article
from engfeed.store import FetchOutcome, Store
from engfeed.web.app import create_app
from engfeed.web.hints import HINT_403, HINT_404, HINT_429, HINT_CONNECT, HINT_NOT_FEED, HINT_TIMEOUT
from engfeed.web.refresh import Refresher
from engfeed.web.render import mark_html, safe_url
from engfeed.web.security import CSP
from pgserver import NewStore, store_location

BASE = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)

SLACK_TEXT = (
    "In early 2023, Slack faced a foundational challenge: serving large language models at enterprise "
    "scale. We cut p99 latency by half and doubled throughput by batching requests on the GPU, and "
    "tail latency stayed flat under load. Profiling with flame graphs found the bottleneck."
)
NETFLIX_TEXT = (
    "When a whole AWS region fails, we evacuate traffic to the healthy regions within minutes. "
    "Failover is rehearsed weekly through chaos experiments, and replication keeps every region "
    "warm so a regional outage is invisible to members. Incident postmortems feed the drills."
)
LEDGER_TEXT = (
    "We moved our payment ledger from a single primary database to a sharded cluster. Each shard "
    "owns a range of account ids and writes go through a two-phase commit coordinator."
)

CORE: list[Article] = [
    Article(
        uid="slack-multicloud",
        url="https://slack.engineering/slack-ai-multi-cloud/",
        title="Slack AI: The Path to Multi-Cloud",
        published=BASE,
        source="Slack",
        excerpt="Serving LLMs at enterprise scale with the security, reliability and performance you expect.",
        text=SLACK_TEXT,
        content_html=f"<p>{SLACK_TEXT}</p><p><a href='https://slack.engineering/'>Slack Engineering</a></p>",
    ),
    Article(
        uid="netflix-evacuation",
        url="https://netflixtechblog.com/region-evacuation",
        title="Keeping services up when a region fails",
        published=BASE - timedelta(days=1),
        source="Netflix",
        excerpt="How regional evacuation keeps streaming up during a cloud outage.",
        text=NETFLIX_TEXT,
        summary_html=f"<p>{NETFLIX_TEXT}</p>",
    ),
    Article(
        uid="meta-ledger",
        url="https://engineering.fb.com/ledger",
        title="Sharding the payment ledger",
        published=BASE - timedelta(days=2),
        source="Meta",
        excerpt="A sharded ledger with two-phase commit.",
        text=LEDGER_TEXT,
    ),
    Article(
        uid="xss-attempt",
        url="javascript:alert(1)",
        title="<script>alert(1)</script>",
        published=BASE - timedelta(days=3),
        source="Evil<b>Corp</b>",
        excerpt="<img src=x onerror=alert(2)> excerpt",
        text="an attempt at scripting",
        content_html=(
            '<p>hello<script>alert(3)</script><a href="javascript:alert(4)">click</a>'
            '<img src="x" onerror="alert(5)"></p>'
        ),
    ),
]
FILLER_COUNT = 41


def filler(i: int) -> Article:
    source = ("GitHub", "Dropbox", "Meta")[i % 3]
    return Article(
        uid=f"filler-{i:03d}",
        url=f"https://example.com/posts/{i}",
        title=f"Engineering notes #{i}: build systems and code review",
        published=BASE - timedelta(days=10 + i),
        source=source,
        excerpt=f"Notes number {i} on build caching and code review.",
        text=f"Notes number {i}. Remote build caching made CI faster; code review turnaround improved.",
    )


ALL = [*CORE, *(filler(i) for i in range(FILLER_COUNT))]
TOTAL = len(ALL)


# Angles are assigned by hand (not by the labeller, whose decisions are angles.py's business):
# the page only has to render them. Saved under the labeller's signature, so a refresh
# leaves them alone and labels only what it brings in.
ANGLES: dict[str, list[AngleMatch]] = {
    "slack-multicloud": [
        AngleMatch("systems performance", ("p99", "latency", "throughput"), 0.8),
        AngleMatch("optimization techniques", ("batching",), 0.5),
    ],
    "netflix-evacuation": [AngleMatch("real-time and reliable systems", ("failover", "replication"), 0.7)],
    "meta-ledger": [AngleMatch("architecture depth", ("sharded", "two-phase commit"), 0.6)],
    **{
        f"filler-{i:03d}": [AngleMatch("implementation detail", ("build caching",), 0.4)]
        for i in range(0, 41, 4)
    },
}


def build_feed(path: Path | str, articles: list[Article] | None = None) -> Feed:
    """A Feed over a fresh store at ``path`` holding ``articles`` (default: ``ALL``), with angles."""
    store = Store(path)
    chosen = articles if articles is not None else ALL
    with store.transaction() as tx:
        written = store.upsert_articles(chosen, source_id=None, conn=tx)
    feed = Feed(store, embedder=None)
    uids = {a.uid: rowid for a, rowid in zip(chosen, written.new, strict=True)}
    labels = [(rowid, ANGLES.get(uid, [])) for uid, rowid in uids.items()]
    store.angles.save(labels, feed.labeler.signature)
    return feed


def client_for(feed: Feed, **kwargs: object) -> TestClient:
    kwargs.setdefault("refresh_interval_min", 0)
    kwargs.setdefault("allowed_hosts", ["testserver"])
    app = create_app(feed, **kwargs)  # type: ignore[arg-type]
    return TestClient(app, base_url="http://testserver")


@pytest.fixture(scope="module")
def feed(request: pytest.FixtureRequest, module_backend: str) -> Iterator[Feed]:
    """The page's articles on each backend: the tests that take it run on both."""
    f = build_feed(store_location(request, module_backend, "web"))
    yield f
    f.close()


@pytest.fixture(scope="module")
def client(feed: Feed) -> Iterator[TestClient]:
    with client_for(feed) as c:
        yield c


# -- small HTML helpers ------------------------------------------------------------------------
class Collector(HTMLParser):
    """Collects tags with their attributes, and the text of the whole document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_bodies.append(data)
        self.text.append(data)


def parse(html: str) -> Collector:
    c = Collector()
    c.feed(html)
    return c


def text_of(html: str) -> str:
    return " ".join(" ".join(parse(html).text).split())


def card_uids(html: str) -> list[str]:
    return re.findall(r'data-card data-uid="([^"]+)"', html)


def hrefs(html: str) -> list[str]:
    return [str(a.get("href")) for t, a in parse(html).tags if t == "a" and a.get("href") is not None]


def next_link(html: str) -> str | None:
    found = re.search(r'<a [^>]*href="([^"]+)"[^>]*data-load-more', html)
    return found.group(1).replace("&amp;", "&") if found else None


# -- the home page -----------------------------------------------------------------------------
def test_home_has_the_page_furniture(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    text = text_of(r.text)
    assert "<title>Engineering Feed</title>" in r.text
    assert '<h1 id="page-title" class="hero__title">Engineering Feed</h1>' in r.text
    assert "A curated reading feed of engineering blogs — from teams building real systems at scale." in text
    assert re.search(r'<label[^>]*for="q"[^>]*>Context Search</label>', r.text)
    assert f"{TOTAL} articles" in text
    assert "Ranked by recency by default. Add a concept query to surface related context." in text
    assert 'href="#main"' in r.text and "Skip to content" in text


def test_home_cards_show_company_title_date_angle_excerpt(client: TestClient, feed: Feed) -> None:
    html = client.get("/").text
    uids = card_uids(html)
    assert uids[:4] == ["slack-multicloud", "netflix-evacuation", "meta-ledger", "xss-attempt"]
    assert len(uids) == 30
    card = html[html.index('data-uid="slack-multicloud"') : html.index('data-uid="netflix-evacuation"')]
    card_text = text_of(card)
    assert "Slack" in card_text
    assert "Mar 4, 2025" in card_text and 'datetime="2025-03-04T12:00:00Z"' in card
    assert 'href="https://slack.engineering/slack-ai-multi-cloud/"' in card
    assert ">Slack AI: The Path to Multi-Cloud</a>" in card
    assert 'href="/a/slack-multicloud"' in card
    assert "Serving LLMs at enterprise scale" in card_text
    stored = feed.article("slack-multicloud")
    assert stored is not None and stored.angles
    first = stored.angles[0]
    assert f"Useful angle: {first.name} via {', '.join(first.terms)}" in card_text


def test_home_sidebar_counts_companies_and_angles(client: TestClient, feed: Feed) -> None:
    html = client.get("/").text
    for name, count in feed.source_counts():
        pattern = (
            rf'data-filter-source="{re.escape(name)}"><span class="filter__name">[^<]*</span>'
            rf' <span class="filter__count">{count}</span>'
        )
        if "<" not in name:
            assert re.search(pattern, html), name
    for name, count in feed.angle_counts():
        assert f'data-filter-angle="{name}"' in html
        assert re.search(rf'data-filter-angle="{re.escape(name)}"[^>]*>.*?filter__count">{count}<', html)


def test_pagination_walks_every_article_once_by_cursor(client: TestClient) -> None:
    seen: list[str] = []
    url: str | None = "/"
    pages = 0
    while url:
        html = client.get(url).text
        uids = card_uids(html)
        assert uids, url
        seen.extend(uids)
        url = next_link(html)
        if url:
            assert "cursor=" in url and "offset" not in url
        pages += 1
        assert pages < 10
    assert pages == 2
    assert len(seen) == TOTAL == len(set(seen))
    expected = [a.uid for a in sorted(ALL, key=lambda a: a.published, reverse=True)]
    assert seen == expected


def test_second_page_links_back_to_newest(client: TestClient) -> None:
    url = next_link(client.get("/").text)
    assert url is not None
    html = client.get(url).text
    assert "data-newest" in html and "Newest" in text_of(html)
    assert f"{TOTAL} articles" in text_of(html)


def test_partial_returns_only_the_results_region(client: TestClient) -> None:
    r = client.get("/?partial=1&source=Netflix")
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<section class="results"')
    assert "<html" not in r.text
    assert card_uids(r.text) == ["netflix-evacuation"]


# -- filters -----------------------------------------------------------------------------------
def test_filter_by_company(client: TestClient) -> None:
    html = client.get("/?source=Netflix").text
    assert card_uids(html) == ["netflix-evacuation"]
    assert "1 article" in text_of(html)
    assert 'aria-current="true"' in html and "filter--active" in html
    assert 'data-remove-filter="company"' in html


def test_filter_by_several_companies_case_insensitive(client: TestClient) -> None:
    html = client.get("/?source=netflix&source=SLACK").text
    assert sorted(card_uids(html)) == ["netflix-evacuation", "slack-multicloud"]
    html = client.get("/?source=netflix,slack").text
    assert sorted(card_uids(html)) == ["netflix-evacuation", "slack-multicloud"]


def test_company_link_toggles_and_keeps_other_filters(client: TestClient) -> None:
    html = client.get("/?source=Netflix&since=2025-01-01").text
    link = re.search(r'href="([^"]+)" data-filter-source="Slack"', html)
    assert link is not None
    params = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)
    assert params["source"] == ["Netflix", "Slack"] and params["since"] == ["2025-01-01"]
    remove = re.search(r'href="([^"]+)" data-filter-source="Netflix"', html)
    assert remove is not None
    assert "source=Netflix" not in remove.group(1)


def test_filter_by_angle(client: TestClient, feed: Feed) -> None:
    counts = dict(feed.angle_counts())
    assert counts, "some articles are labelled"
    name, count = next(iter(counts.items()))
    html = client.get("/", params={"angle": name}).text
    uids = card_uids(html)
    assert len(uids) == min(count, 30)
    for uid in uids:
        art = feed.article(uid)
        assert art is not None and name in [a.name for a in art.angles]


def test_filter_by_date_range(client: TestClient) -> None:
    html = client.get("/?since=2025-03-02&until=2025-03-04").text
    assert card_uids(html) == ["netflix-evacuation", "meta-ledger"]
    assert 'value="2025-03-02"' in html and 'value="2025-03-04"' in html


def test_bad_filter_is_reported_and_ignored(client: TestClient) -> None:
    r = client.get("/?since=yesterday&source=Netflix")
    assert r.status_code == 400
    assert "not a date" in r.text
    assert card_uids(r.text) == ["netflix-evacuation"]


def test_bad_cursor_is_reported(client: TestClient) -> None:
    r = client.get("/?cursor=abc")
    assert r.status_code == 400
    assert len(card_uids(r.text)) == 30


# -- search ------------------------------------------------------------------------------------
def test_search_ranks_by_relevance_with_context_and_why(client: TestClient) -> None:
    r = client.get("/", params={"q": "region failover"})
    assert r.status_code == 200
    uids = card_uids(r.text)
    assert uids[0] == "netflix-evacuation"
    text = text_of(r.text)
    assert re.search(rf"{len(uids)} match(es)? for “region failover”", text)
    card = r.text[r.text.index('data-uid="netflix-evacuation"') :]
    context = re.search(r"<blockquote class=\"card__context\" data-context>(.*?)</blockquote>", card, re.S)
    assert context is not None and "<mark>" in context.group(1)
    assert '<details class="why" data-why>' in card
    for key in ("bm25_rank", "dense_rank", "recency", "fused"):
        assert f'data-why-key="{key}"' in card
    assert "Ranked by relevance" in text
    assert 'value="region failover"' in r.text


def test_search_without_matches_says_so(client: TestClient) -> None:
    r = client.get("/", params={"q": "zyxxyqq"})
    assert r.status_code == 200
    assert "0 matches for “zyxxyqq”" in text_of(r.text)
    assert "No matches." in text_of(r.text)


def test_search_keeps_filters(client: TestClient) -> None:
    html = client.get("/", params={"q": "build caching", "source": "GitHub"}).text
    uids = card_uids(html)
    assert uids and all(u.startswith("filler-") for u in uids)
    assert all(int(u.split("-")[1]) % 3 == 0 for u in uids)
    assert '<input type="hidden" name="source" value="GitHub">' in html


def test_search_more_results_raises_the_limit(client: TestClient) -> None:
    html = client.get("/", params={"q": "build caching code review"}).text
    assert len(card_uids(html)) == 20
    more = next_link(html)
    assert more is not None and "limit=40" in more
    assert len(card_uids(client.get(more).text)) == 40


def test_mark_html_keeps_only_mark() -> None:
    dirty = (
        'a &lt;b&gt; <mark onclick="x()">hit</mark> <script>alert(1)</script><b>bold</b>'
        ' <a href="javascript:1">l</a>'
    )
    clean = str(mark_html(dirty))
    assert "<mark>hit</mark>" in clean
    assert "&lt;b&gt;" in clean
    for bad in ("<script", "onclick", "<b>", "<a ", "javascript:"):
        assert bad not in clean


# -- article page ------------------------------------------------------------------------------
def test_article_page(client: TestClient, feed: Feed) -> None:
    r = client.get("/a/slack-multicloud")
    assert r.status_code == 200
    text = text_of(r.text)
    assert "Slack AI: The Path to Multi-Cloud" in text
    assert "We cut p99 latency by half" in text
    assert 'href="https://slack.engineering/slack-ai-multi-cloud/"' in r.text
    assert "Related articles" in text
    # Each related card leads to its own page here, not only to the publisher's site.
    page = client.get("/a/filler-001").text
    related = page[page.index('<section class="related"') :]
    own = [h for h in hrefs(related) if h.startswith("/a/")]
    assert len(own) >= 3 and "/a/filler-001" not in own
    assert all(client.get(href).status_code == 200 for href in own)
    assert [h for h in hrefs(related) if h.startswith("https://example.com/posts/")]  # and the original
    art = feed.article("slack-multicloud")
    assert art is not None
    assert art.angles
    for angle in art.angles:
        assert f'data-angle="{angle.name}"' in r.text
    guideline = next(a for a in feed.angles() if a.name == art.angles[0].name).guideline
    assert "What does this angle mean?" in text and guideline[:60] in text


def test_article_page_summary_fallback_and_404(client: TestClient) -> None:
    assert "regional outage is invisible" in client.get("/a/netflix-evacuation").text
    r = client.get("/a/no-such-article")
    assert r.status_code == 404
    assert "Article not found" in r.text
    assert client.get("/a/" + "x" * 5000).status_code == 404


# -- XSS ---------------------------------------------------------------------------------------
def test_hostile_article_is_escaped_everywhere(client: TestClient) -> None:
    for url in ("/", "/a/xss-attempt", "/?source=Evil<b>Corp</b>", "/?q=scripting"):
        html = client.get(url).text
        assert "<script>alert" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
        assert "<b>Corp</b>" not in html, url
        assert "onerror=alert" not in html.replace("onerror=alert(2)&gt;", ""), url
        assert not [h for h in hrefs(html) if h.lower().lstrip().startswith(("javascript:", "data:"))], url
        for tag, attrs in parse(html).tags:
            assert not any(k.startswith("on") for k in attrs), (url, tag, attrs)


def test_hostile_content_is_sanitised(client: TestClient) -> None:
    html = client.get("/a/xss-attempt").text
    body = html[html.index("data-article-body") :]
    assert "hello" in body and "click" in body
    assert "alert(3)" not in body and "alert(4)" not in body and "alert(5)" not in body
    assert "The feed gave no usable link to the original." in html


def test_safe_url() -> None:
    assert safe_url("https://example.com/a?b=1") == "https://example.com/a?b=1"
    assert safe_url("http://example.com") == "http://example.com"
    for bad in (
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html,x",
        "//evil.com",
        "/local",
        "",
        None,
        "https:///x",
        "https://a\nb",
    ):
        assert safe_url(bad) == "", bad


# -- security headers and CSP-compatibility ----------------------------------------------------
PAGES = ["/", "/?q=latency", "/a/slack-multicloud", "/sources", "/docs", "/nope"]


@pytest.mark.parametrize("url", [*PAGES, "/api/articles", "/feed.atom", "/static/app.css", "/healthz"])
def test_security_headers_everywhere(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_have_no_inline_script_or_style(client: TestClient, url: str) -> None:
    doc = parse(client.get(url).text)
    assert not doc.script_bodies, "inline script/style bodies are blocked by the CSP"
    for tag, attrs in doc.tags:
        assert "style" not in attrs, (tag, attrs)
        assert tag != "style"
        if tag == "script":
            assert str(attrs.get("src", "")).startswith("/static/")
        if tag == "link" and attrs.get("rel") == "stylesheet":
            assert str(attrs.get("href", "")).startswith("/static/")
        for name in ("src", "href"):
            value = str(attrs.get(name) or "")
            if tag in ("script", "link", "img") and value.startswith("http"):
                pytest.fail(f"external asset {value}")


@pytest.mark.parametrize("url", PAGES)
def test_pages_have_landmarks_labels_and_heading_order(client: TestClient, url: str) -> None:
    html = client.get(url).text
    doc = parse(html)
    names = [t for t, _ in doc.tags]
    for landmark in ("header", "nav", "main", "footer"):
        assert landmark in names, landmark
    assert 'id="main"' in html and 'href="#main"' in html
    ids_with_label = {str(a.get("for")) for t, a in doc.tags if t == "label"}
    for tag, attrs in doc.tags:
        if tag in ("input", "select", "textarea") and attrs.get("type") != "hidden":
            assert attrs.get("id") in ids_with_label or attrs.get("aria-label"), attrs
    levels = [int(t[1]) for t, _ in doc.tags if re.fullmatch(r"h[1-6]", t)]
    assert levels and levels[0] == 1 and levels.count(1) == 1
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, levels


def test_static_assets_are_served_locally(client: TestClient) -> None:
    for name, kind in (
        ("app.css", "text/css"),
        ("app.js", "javascript"),
        ("theme.js", "javascript"),
        ("favicon.svg", "image/svg+xml"),
    ):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
        assert "max-age" in r.headers["cache-control"]
    assert client.get("/favicon.ico", follow_redirects=False).status_code == 301
    js = client.get("/static/app.js").text
    for feature in ('"/"', '"j"', '"k"', '"o"', "localStorage", "data-load-more", "setTimeout"):
        assert feature in js, feature
    css = client.get("/static/app.css").text
    assert "prefers-color-scheme: dark" in css and '[data-theme="dark"]' in css and ":focus-visible" in css


def test_html_ids_for_browser_tests(client: TestClient) -> None:
    html = client.get("/").text
    for marker in (
        'id="q"',
        'id="search-form"',
        "data-card ",
        "data-card-link",
        "data-filter-source=",
        "data-filter-angle=",
        'id="load-more"',
        'id="theme-toggle"',
        'id="since"',
        'id="until"',
        'id="subscribe-atom"',
    ):
        assert marker in html, marker


# -- sources page and refresh ------------------------------------------------------------------
def failing_sources(feed: Feed) -> None:
    now = datetime.now(UTC)
    cases = [
        ("Blocked", 403, "HTTP 403 Forbidden"),
        ("Moved", 404, "HTTP 404 Not Found"),
        ("Busy", 429, "HTTP 429 Too Many Requests"),
        ("Slow", None, "timed out after 45s"),
        ("Nowhere", None, "connection failed: [Errno -2] Name or service not known"),
        ("Htmlpage", 200, "not a feed: the document is an HTML page"),
    ]
    for name, status, error in cases:
        src = feed.store.add_source(name, f"https://{name.lower()}.example/feed.xml")
        assert src.id is not None
        feed.store.record_fetch(
            src.id,
            FetchOutcome(
                attempt=now, ok=False, http_status=status, error=error, next_due=now + timedelta(hours=1)
            ),
        )
    ok = feed.store.add_source("Healthy", "https://healthy.example/feed.xml")
    assert ok.id is not None
    feed.store.record_fetch(
        ok.id,
        FetchOutcome(attempt=now, ok=True, http_status=200, error=None, next_due=now + timedelta(minutes=30)),
    )
    feed.store.add_source("Fresh", "https://fresh.example/feed.xml")


def test_sources_page_shows_health_and_hints(new_store: NewStore) -> None:
    feed = build_feed(new_store("s"), CORE[:1])
    failing_sources(feed)
    with client_for(feed) as c:
        r = c.get("/sources")
    assert r.status_code == 200
    text = text_of(r.text)
    for hint in (HINT_403, HINT_404, HINT_429, HINT_TIMEOUT, HINT_CONNECT, HINT_NOT_FEED):
        assert hint in text, hint
    assert "the site blocks automated readers" in text.lower()
    assert "the feed moved or was removed; check the site for a new feed url" in text.lower()
    assert "8 sources" in text
    assert "1 ok · 6 failing · 1 never fetched" in text
    assert 'data-source="Healthy" data-health="ok"' in r.text
    assert 'data-source="Fresh" data-health="never fetched"' in r.text
    for label in ("Last success", "Last attempt", "Consecutive failures", "Next attempt"):
        assert label in text
    assert "data-failures>1<" in r.text
    assert "Background refresh is off" in text


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found is not None
    return found.group(1)


RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Local Eng</title><link>http://127.0.0.1/</link>
<item><title>Local post about tail latency</title><link>http://127.0.0.1/posts/1</link>
<guid>local-1</guid><pubDate>Mon, 03 Mar 2025 10:00:00 GMT</pubDate>
<description>We cut p99 tail latency with better batching.</description></item>
</channel></rss>"""


def test_refresh_requires_csrf_and_refreshes_from_a_local_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from httpserver import Response as Scripted
    from httpserver import running_server

    feed = build_feed(tmp_path / "r.db", [])
    with running_server(monkeypatch) as server:
        url = server.route("/feed.xml", Scripted(body=RSS, headers={"Content-Type": "application/rss+xml"}))
        feed.store.add_source("Local", url)
        app = create_app(feed, refresh_interval_min=0, csrf_secret=b"s" * 32, allowed_hosts=["testserver"])
        with TestClient(app) as c:
            # no cookie, no token
            assert c.post("/refresh", follow_redirects=False).status_code == 403
            page = c.get("/sources")
            token = csrf_token(page.text)
            assert "engfeed_csrf" in page.headers.get("set-cookie", "")
            assert "httponly" in page.headers["set-cookie"].lower()
            assert "samesite=strict" in page.headers["set-cookie"].lower()
            # cookie but no token / wrong token / token from another origin
            assert c.post("/refresh", follow_redirects=False).status_code == 403
            assert (
                c.post("/refresh", data={"csrf_token": "0" * 64}, follow_redirects=False).status_code == 403
            )
            r = c.post(
                "/refresh",
                data={"csrf_token": token},
                headers={"Origin": "https://evil.example"},
                follow_redirects=False,
            )
            assert r.status_code == 403
            assert server.requests_for("/feed.xml") == []
            # the real thing
            r = c.post("/refresh", data={"csrf_token": token}, follow_redirects=False)
            assert r.status_code == 303
            assert r.headers["location"] == "/sources?refresh=started"
            refresher = app.state.refresher
            assert refresher.wait_idle(timeout=30)
            assert len(server.requests_for("/feed.xml")) == 1
            page = c.get("/sources?refresh=started")
            assert "Refresh started" in page.text
            assert 'data-source="Local" data-health="ok"' in page.text
            assert "Last refresh finished" in text_of(page.text)
            home = c.get("/")
            assert "Local post about tail latency" in home.text
            assert "1 article" in text_of(home.text)


def test_refresh_while_running_reports_already_running(tmp_path: Path) -> None:
    feed = build_feed(tmp_path / "busy.db", [])
    app = create_app(feed, refresh_interval_min=0, allowed_hosts=["testserver"])
    release = threading.Event()
    refresher: Refresher = app.state.refresher
    refresher.job = lambda only_due: (release.wait(10), "done")[1]
    with TestClient(app) as c:
        token = csrf_token(c.get("/sources").text)
        first = c.post("/refresh", data={"csrf_token": token}, follow_redirects=False)
        second = c.post("/refresh", data={"csrf_token": token}, follow_redirects=False)
        assert first.headers["location"].endswith("refresh=started")
        assert second.status_code == 303 and second.headers["location"].endswith("refresh=running")
        page = c.get("/sources?refresh=running")
        assert "already running" in page.text
        assert 'data-refresh-state="running"' in page.text
        release.set()
        assert refresher.wait_idle(10)


def test_refresh_get_is_not_allowed(client: TestClient) -> None:
    assert client.get("/refresh").status_code == 405


# -- the background scheduler ------------------------------------------------------------------
def test_scheduler_runs_repeatedly_and_never_overlaps() -> None:
    lock = threading.Lock()
    active = 0
    peak = 0
    runs: list[bool] = []

    def job(only_due: bool) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.03)  # longer than the interval: the next tick must wait
        with lock:
            active -= 1
        runs.append(only_due)
        return "ok"

    refresher = Refresher(job, interval_s=0.01, jitter_s=0.005, initial_delay_s=0)

    async def main() -> None:
        refresher.start()
        assert refresher.scheduled
        refused = 0
        for i in range(400):
            if i % 7 == 0:  # manual triggers between scheduled runs: refused while one is busy
                refused += not refresher.trigger(only_due=False)
            await anyio.sleep(0.005)
            if len(runs) >= 6 and True in runs and refused:
                break
        await refresher.stop()

    anyio.run(main)
    assert refresher.wait_idle(5)
    assert len(runs) >= 3
    assert peak == 1
    assert True in runs  # the schedule runs only due sources


def test_scheduler_jitter_stays_in_bounds() -> None:
    import random

    r = Refresher(lambda only_due: "", interval_s=600, jitter_s=60, rng=random.Random(1))
    delays = [r.next_delay() for _ in range(200)]
    assert all(540 <= d <= 660 for d in delays)
    assert len(set(delays)) > 100
    assert Refresher(lambda only_due: "", interval_s=600).jitter_s == 60


def test_refresh_interval_zero_disables_the_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = build_feed(tmp_path / "off.db", [])
    monkeypatch.setenv("ENGFEED_REFRESH_INTERVAL", "0")
    app = create_app(feed, allowed_hosts=["testserver"])
    with TestClient(app):
        assert not app.state.refresher.enabled
        assert not app.state.refresher.scheduled
    monkeypatch.setenv("ENGFEED_REFRESH_INTERVAL", "15")
    app = create_app(feed, refresh_initial_delay_s=3600, allowed_hosts=["testserver"])
    with TestClient(app):
        assert app.state.refresher.interval_s == 15 * 60
        assert app.state.refresher.scheduled
    assert not app.state.refresher.scheduled


def test_scheduled_refresh_runs_inside_the_server(tmp_path: Path) -> None:
    feed = build_feed(tmp_path / "sched.db", [])
    calls: list[bool] = []
    app = create_app(
        feed,
        refresh_interval_min=0.001,
        refresh_jitter_s=0,
        refresh_initial_delay_s=0,
        allowed_hosts=["testserver"],
    )
    refresher: Refresher = app.state.refresher
    refresher.job = lambda only_due: (calls.append(only_due), "ok")[1]
    with TestClient(app) as c:
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            assert c.get("/healthz").status_code == 200  # pages keep serving meanwhile
            time.sleep(0.02)
    assert len(calls) >= 2 and all(calls)


def test_a_failing_refresh_is_recorded_not_raised(tmp_path: Path) -> None:
    def boom(only_due: bool) -> str:
        raise RuntimeError("disk on fire")

    r = Refresher(boom, interval_s=0)
    assert r.trigger(only_due=True)
    assert r.wait_idle(5)
    assert r.last is not None and not r.last.ok and "disk on fire" in r.last.summary
    assert r.trigger(only_due=True)  # the lock was released
    assert r.wait_idle(5)


# -- robustness: no query string gives a 500 ---------------------------------------------------
ROUTES = [
    "/",
    "/api/articles",
    "/api/search",
    "/feed.atom",
    "/feed.json",
    "/sources",
    "/a/slack-multicloud",
    "/api/articles/slack-multicloud/related",
    "/docs",
]
KEYS = ["q", "source", "angle", "since", "until", "cursor", "limit", "partial", "refresh", "x"]
odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(
        [
            "",
            "\x00",
            "-1",
            "0",
            "99999999999999999999999",
            "1e9",
            "NaN",
            "2025-13-45",
            "0000-01-01",
            "9999-12-31T23:59:59+14:00",
            "1.2.3",
            "9" * 30 + "." + "9" * 30,
            "-9223372036854775809.1",
            "9223372036854775807.9223372036854775807",
            "' OR 1=1 --",
            'title:"x" NEAR(a b) * ^',
            "<script>alert(1)</script>",
            "%00%ff",
            "🚀" * 50,
            "\ud800",
            "a" * 5000,
        ]
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    params=st.lists(st.tuples(st.sampled_from(KEYS), odd_text), max_size=6),
)
def test_no_query_string_gives_a_500(client: TestClient, route: str, params: list[tuple[str, str]]) -> None:
    safe = [(k, v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")) for k, v in params]
    r = client.get(route, params=safe)
    assert r.status_code < 500, (route, params, r.text[:500])
    if route.startswith("/api/") and r.status_code >= 400:
        assert "error" in r.json()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_raw_query_bytes_never_give_a_500(client: TestClient, raw: bytes) -> None:
    query = "".join(chr(b) if 0x21 <= b < 0x7F and chr(b) not in "#" else f"%{b:02X}" for b in raw)
    for route in ("/", "/api/articles", "/api/search", "/feed.atom"):
        r = client.get(f"{route}?{query}")
        assert r.status_code < 500, (route, query)


def test_huge_query_string(client: TestClient) -> None:
    for route in ("/", "/api/search", "/feed.json"):
        r = client.get(route, params={"q": "latency " * 7000, "source": ["x"] * 25})
        assert r.status_code in (200, 400)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "text/plain",
            "application/json",
        ]
    ),
)
def test_odd_refresh_posts_are_refused_not_500(client: TestClient, body: bytes, content_type: str) -> None:
    r = client.post("/refresh", content=body, headers={"content-type": content_type}, follow_redirects=False)
    assert r.status_code in (400, 403), r.status_code
