"""Output feeds: any view as Atom 1.0 and JSON Feed 1.1, parsed back.

Atom goes through feedparser (strict, ``bozo`` must stay 0). feedparser 6.0 has no JSON Feed
support, so JSON Feed goes through engfeed's own parser, which is what another Engineering
Feed subscribing to this view would use.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import feedparser
from starlette.testclient import TestClient

import test_web
from engfeed.feed import Feed
from engfeed.models import Article, ParsedFeed
from engfeed.parse import parse_feed
from pgserver import NewStore
from test_web import ALL, BASE, build_feed, client_for

ATOM = "{http://www.w3.org/2005/Atom}"


# The same module-scoped store and client as test_web (each module builds its own).
feed = test_web.feed
client = test_web.client


def newest(n: int) -> list[Article]:
    return sorted(ALL, key=lambda a: a.published, reverse=True)[:n]


def atom(client: TestClient, **params: Any) -> Any:
    r = client.get("/feed.atom", params=params)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    ET.fromstring(r.content)  # well-formed XML
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def jsonfeed(client: TestClient, **params: Any) -> ParsedFeed:
    r = client.get("/feed.json", params=params)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/feed+json")
    doc = r.json()
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(doc["items"], list)
    for item in doc["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert item["url"].startswith("http")
    parsed = parse_feed(r.content, url="http://testserver/feed.json", headers=dict(r.headers))
    assert parsed.format == "json"
    assert len(parsed.articles) == len(doc["items"])
    return parsed


# -- Atom --------------------------------------------------------------------------------------
def test_atom_recency_view(client: TestClient) -> None:
    parsed = atom(client)
    expected = newest(50)
    assert parsed.feed.title == "Engineering Feed"
    assert parsed.feed.get("updated")
    assert len(parsed.entries) == len(expected)
    assert [e.title for e in parsed.entries] == [a.title for a in expected]
    first = parsed.entries[0]
    assert first.link == "https://slack.engineering/slack-ai-multi-cloud/"
    assert first.id == "urn:engfeed:article:slack-multicloud"
    assert first.published == "2025-03-04T12:00:00Z"
    assert first.updated
    assert first.author == "Slack"
    assert any(t.term == "Slack" for t in first.tags)
    assert len({e.id for e in parsed.entries}) == len(parsed.entries)
    self_link = next(link for link in parsed.feed.links if link.rel == "self")
    assert self_link.href == "http://testserver/feed.atom"


def test_atom_reimports_into_engfeed(client: TestClient) -> None:
    raw = client.get("/feed.atom", params={"source": "Netflix,Slack"}).content
    parsed = parse_feed(raw, url="http://testserver/feed.atom")
    assert [(a.title, a.url) for a in parsed.articles] == [
        ("Slack AI: The Path to Multi-Cloud", "https://slack.engineering/slack-ai-multi-cloud/"),
        ("Keeping services up when a region fails", "https://netflixtechblog.com/region-evacuation"),
    ]


def test_atom_escapes_hostile_text(client: TestClient) -> None:
    parsed = atom(client, source="Evil<b>Corp</b>")
    assert len(parsed.entries) == 1
    entry = parsed.entries[0]
    assert entry.title == "<script>alert(1)</script>"
    assert entry.link == "http://testserver/a/xss-attempt"  # javascript: URL replaced by our page
    raw = client.get("/feed.atom", params={"source": "Evil<b>Corp</b>"}).text
    assert "<script>" not in raw and "&lt;script&gt;" in raw


def test_atom_search_view(client: TestClient) -> None:
    parsed = atom(client, q="region failover")
    api = client.get("/api/search", params={"q": "region failover", "limit": 50}).json()
    assert [e.id for e in parsed.entries] == [f"urn:engfeed:article:{h['id']}" for h in api["hits"]]
    assert parsed.entries[0].title == "Keeping services up when a region fails"
    assert "region failover" in parsed.feed.title
    raw = client.get("/feed.atom", params={"q": "region failover"}).text
    assert "&lt;mark&gt;" in raw  # the context passage, as type="html" (feedparser drops <mark>)
    assert parsed.entries[0].summary


def test_atom_source_and_angle_views(client: TestClient, feed: Feed) -> None:
    parsed = atom(client, source="Meta")
    assert parsed.entries and all(e.author == "Meta" for e in parsed.entries)
    assert len(parsed.entries) == sum(1 for a in ALL if a.source == "Meta")
    assert "Meta" in parsed.feed.title
    name, count = feed.angle_counts()[0]
    parsed = atom(client, angle=name)
    assert len(parsed.entries) == min(count, 50)
    for entry in parsed.entries:
        assert name in [t.term for t in entry.tags]


def test_atom_survives_control_characters(new_store: NewStore) -> None:
    odd = Article(
        uid="ctl",
        url="https://example.com/ctl?a=1&b=2",
        title="Bell\x07 and NUL\x00 in a title & <tags>",
        published=BASE,
        source="Odd",
        excerpt="form feed \x0c here",
    )
    feed = build_feed(new_store("ctl"), [odd])
    with client_for(feed) as c:
        parsed = atom(c)
        assert parsed.entries[0].title == "Bell and NUL in a title & <tags>"
        assert parsed.entries[0].link == "https://example.com/ctl?a=1&b=2"
        jf = jsonfeed(c)
        assert jf.articles[0].url == "https://example.com/ctl?a=1&b=2"
        assert jf.articles[0].title == "Bell and NUL in a title & <tags>"


def test_empty_feed_is_valid(new_store: NewStore) -> None:
    feed = build_feed(new_store("empty"), [])
    with client_for(feed) as c:
        assert atom(c).entries == []
        assert jsonfeed(c).articles == []


# -- JSON Feed ---------------------------------------------------------------------------------
def test_json_feed_recency_view(client: TestClient) -> None:
    parsed = jsonfeed(client)
    expected = newest(50)
    assert parsed.title == "Engineering Feed"
    assert [a.title for a in parsed.articles] == [a.title for a in expected]
    assert [a.published for a in parsed.articles] == [a.published for a in expected]
    assert parsed.articles[0].url == "https://slack.engineering/slack-ai-multi-cloud/"
    doc = client.get("/feed.json").json()
    item = doc["items"][0]
    assert item["id"] == "urn:engfeed:article:slack-multicloud"
    assert item["date_published"] == "2025-03-04T12:00:00Z"
    assert item["external_url"] == "http://testserver/a/slack-multicloud"
    assert item["authors"] == [{"name": "Slack"}]
    assert doc["feed_url"] == "http://testserver/feed.json"
    assert doc["home_page_url"] == "http://testserver/"


def test_json_feed_views(client: TestClient) -> None:
    parsed = jsonfeed(client, q="region failover")
    assert parsed.articles[0].title == "Keeping services up when a region fails"
    doc = client.get("/feed.json", params={"q": "region failover"}).json()
    assert "<mark>" in doc["items"][0]["content_html"]
    parsed = jsonfeed(client, source="Netflix")
    assert [a.title for a in parsed.articles] == ["Keeping services up when a region fails"]
    doc = client.get("/feed.json", params={"source": "Evil<b>Corp</b>"}).json()
    assert doc["items"][0]["title"] == "<script>alert(1)</script>"
    assert doc["items"][0]["url"] == "http://testserver/a/xss-attempt"


def test_feeds_follow_date_filters(client: TestClient) -> None:
    parsed = atom(client, since="2025-03-02", until="2025-03-04")
    assert [e.title for e in parsed.entries] == [
        "Keeping services up when a region fails",
        "Sharding the payment ledger",
    ]
    doc = json.loads(
        client.get("/feed.json", params={"since": (BASE - timedelta(hours=1)).isoformat()}).content
    )
    assert len(doc["items"]) == 1


def test_feeds_reject_bad_params(client: TestClient) -> None:
    assert client.get("/feed.atom", params={"since": "nope"}).status_code == 400
    r = client.get("/feed.json", params={"limit": "-3"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


# -- links from the page -----------------------------------------------------------------------
def test_page_links_the_feeds_of_its_view(client: TestClient) -> None:
    html = client.get("/", params={"q": "tail latency", "source": "Slack"}).text
    alternates = re.findall(r'<link rel="alternate" type="([^"]+)" title="[^"]*" href="([^"]+)">', html)
    kinds = {kind: href.replace("&amp;", "&") for kind, href in alternates}
    assert set(kinds) == {"application/atom+xml", "application/feed+json"}
    for kind, path in (("application/atom+xml", "/feed.atom"), ("application/feed+json", "/feed.json")):
        url = urlsplit(kinds[kind])
        assert url.path == path
        assert parse_qs(url.query) == {"q": ["tail latency"], "source": ["Slack"]}
    assert "Subscribe to this view" in html
    assert 'id="subscribe-atom"' in html and 'id="subscribe-json"' in html
    visible = re.search(r'href="([^"]+)" id="subscribe-atom"', html)
    assert visible is not None and visible.group(1).replace("&amp;", "&") == kinds["application/atom+xml"]
    assert client.get(kinds["application/atom+xml"]).status_code == 200


def test_feed_links_drop_the_cursor(client: TestClient) -> None:
    page1 = client.get("/").text
    more = re.search(r'href="([^"]+)" id="load-more"', page1)
    assert more is not None
    page2 = client.get(more.group(1).replace("&amp;", "&")).text
    atom_href = re.search(r'href="([^"]+)" id="subscribe-atom"', page2)
    assert atom_href is not None and "cursor" not in atom_href.group(1)
