"""Feed discovery: <link rel=alternate> parsing, HTML/feed sniffing, and discover() end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engfeed.discover import discover, find_feed_links, looks_like_feed, looks_like_html
from engfeed.errors import EngfeedError
from engfeed.fetch import FetchConfig
from httpserver import LocalHTTPServer, running_server, unused_port

CONFIG = FetchConfig(connect_timeout=2, read_timeout=2, total_timeout=5, max_bytes=1024 * 1024)
RSS = b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>T</title></channel></rss>'
ATOM = b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title></feed>'
JSON_FEED = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": []}).encode()
HTML_TYPE = {"Content-Type": "text/html; charset=utf-8"}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with running_server(monkeypatch) as local:
        yield local


# --------------------------------------------------------------------------- find_feed_links


def test_relative_hrefs_resolve_against_the_page() -> None:
    html = """<!DOCTYPE html><html><head>
      <link rel="stylesheet" href="/style.css">
      <link rel="alternate" type="application/rss+xml" title="RSS" href="feed.xml">
      <link rel="alternate" type="application/atom+xml" href="/atom.xml">
      <link rel="alternate" type="application/feed+json" href="//cdn.example.net/feed.json">
      <link rel="alternate" type="application/json" href="https://example.com/wp-json/">
    </head><body></body></html>"""
    assert find_feed_links(html, "https://example.com/blog/") == [
        "https://example.com/blog/feed.xml",
        "https://example.com/atom.xml",
        "https://cdn.example.net/feed.json",
        "https://example.com/wp-json/",
    ]


def test_base_href_is_used_even_for_earlier_links() -> None:
    html = b"""<html><head>
      <link rel=alternate type=application/rss+xml href=rss.xml>
      <base href="/engineering/">
      <base href="https://ignored.example/">
      <link rel="alternate" type="application/atom+xml" href="atom.xml">
    </head></html>"""
    assert find_feed_links(html, "https://example.com/some/page.html") == [
        "https://example.com/engineering/rss.xml",
        "https://example.com/engineering/atom.xml",
    ]


def test_absolute_base_href() -> None:
    html = '<base href="https://blog.example.org/"><link rel="alternate" type="application/rss+xml" href="x">'
    assert find_feed_links(html, "https://example.com/") == ["https://blog.example.org/x"]


def test_attribute_variants() -> None:
    html = """
      <LINK REL="Alternate" TYPE="Application/RSS+XML; charset=utf-8" HREF="  /a.xml  ">
      <link rel="alternate nofollow" type="application/atom+xml" href="/b.xml#top">
      <link type="application/rss+xml" rel="alternate" href="/c.xml"/>
      <link rel="alternate" type="application/rss+xml" href="/a.xml">
      <link rel="alternate" type="application/rss+xml" href="feed://example.com/d.xml">
      <link rel="alternate" type="application/rss+xml" href="feed:https://example.com/e.xml">
      <link rel="alternate" type="application/rss+xml" href="/f
.xml">
    """
    assert find_feed_links(html, "https://example.com/") == [
        "https://example.com/a.xml",
        "https://example.com/b.xml",
        "https://example.com/c.xml",
        "http://example.com/d.xml",
        "https://example.com/e.xml",
        "https://example.com/f.xml",
    ]


def test_links_that_are_not_feeds_are_ignored() -> None:
    html = """<html><head>
      <link rel="alternate" hreflang="fr" href="/fr/">
      <link rel="alternate" type="text/html" href="/mobile/">
      <link rel="alternate" type="application/json+oembed" href="/oembed">
      <link rel="feed" type="text/html" href="/news">
      <link rel="icon" type="application/rss+xml" href="/not-alternate.xml">
      <link rel="alternate" type="application/rss+xml">
      <link rel="alternate" type="application/rss+xml" href="">
      <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
      <link rel="alternate" type="application/rss+xml" href="mailto:a@example.com">
      <!-- <link rel="alternate" type="application/rss+xml" href="/commented.xml"> -->
      <script>var s = '<link rel="alternate" type="application/rss+xml" href="/script.xml">';</script>
    </head><body><a rel="alternate" type="application/rss+xml" href="/anchor.xml">RSS</a></body></html>"""
    assert find_feed_links(html, "https://example.com/") == []


def test_links_in_the_body_count() -> None:
    html = '<body><p>hi<link rel="alternate" type="application/atom+xml" href="/late.xml"></body>'
    assert find_feed_links(html, "https://example.com/") == ["https://example.com/late.xml"]


@pytest.mark.parametrize(
    "html",
    [
        b"",
        b"\x00\xff\xfe garbage \x80\x81",
        "<<<>>><link rel='alternate' type='application/rss+xml' href='/ok.xml'<<<",
        '<link rel="alternate" type="application/rss+xml" href="http://[::1/broken">',
        "<html><head><link rel=alternate type=application/rss+xml href=/x.xml",  # unclosed
        "<base href='http://[bad'><link rel=alternate type=application/rss+xml href=/y.xml>",
        "<![CDATA[ <link",
        "&#xD800;&#99999999;&;<!--",
        '<link rel="alternate" type="application/rss+xml" href=\'/\u00e9t\u00e9.xml\'>',
    ],
)
def test_garbage_never_raises(html: str | bytes) -> None:
    result = find_feed_links(html, "https://example.com/")
    assert isinstance(result, list) and all(u.startswith(("http://", "https://")) for u in result)


def test_non_utf8_bytes() -> None:
    html = '<title>caf\xe9</title><link rel="alternate" type="application/rss+xml" href="/feed">'
    assert find_feed_links(html.encode("latin-1"), "https://example.com/") == ["https://example.com/feed"]


@given(st.text(max_size=300) | st.binary(max_size=300), st.sampled_from(["https://example.com/a/", "", "x"]))
def test_find_feed_links_never_raises(html: str | bytes, base: str) -> None:
    assert isinstance(find_feed_links(html, base), list)


@given(st.lists(st.sampled_from(["rss.xml", "/atom", "../up.xml", "?q=1", "sub/dir/feed"]), max_size=6))
def test_document_order_and_no_duplicates(hrefs: list[str]) -> None:
    html = "".join(f'<link rel="alternate" type="application/rss+xml" href="{h}">' for h in hrefs)
    found = find_feed_links(html, "https://example.com/blog/")
    assert len(found) == len(set(found))
    assert found == list(dict.fromkeys(found))
    assert len(found) == len(set(hrefs))


# --------------------------------------------------------------------------- sniffing


def test_looks_like_html() -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>x</title></head></html>"
    assert looks_like_html(page, "text/html; charset=utf-8")
    assert looks_like_html(page, "")
    assert looks_like_html(b"\xef\xbb\xbf  <html lang=en>", "application/octet-stream")
    assert looks_like_html(b"<p>fragment</p>", "text/html")
    assert not looks_like_html(RSS, "text/html")  # a feed served with the wrong type
    assert not looks_like_html(ATOM, "application/atom+xml")
    assert not looks_like_html(JSON_FEED, "application/json")
    assert not looks_like_html(b"\x89PNG\r\n", "image/png")
    assert not looks_like_html(b"", "")


def test_looks_like_feed() -> None:
    assert looks_like_feed(RSS, "text/html")
    assert looks_like_feed(ATOM, "")
    assert looks_like_feed(JSON_FEED, "application/json")
    assert looks_like_feed(b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">', "")
    assert looks_like_feed(b"<?xml version='1.0'?><weird/>", "application/rss+xml")  # trust the header
    assert not looks_like_feed(b"<!doctype html><html></html>", "application/rss+xml")
    assert not looks_like_feed(b'{"a": 1}', "application/json")
    assert not looks_like_feed(b"<urlset></urlset>", "application/xml")
    assert not looks_like_feed(b"", "application/rss+xml")


# --------------------------------------------------------------------------- discover


def test_discover_from_a_page(server: LocalHTTPServer) -> None:
    server.route(
        "/blog/",
        body=b'<html><head><link rel="alternate" type="application/rss+xml" href="feed.xml"></head></html>',
        headers=HTML_TYPE,
    )
    assert asyncio.run(discover(server.url("/blog/"), CONFIG)) == server.url("/blog/feed.xml")


def test_discover_resolves_against_the_redirected_page(server: LocalHTTPServer) -> None:
    server.redirect("/old", "/engineering/", 302)
    server.route(
        "/engineering/",
        body=b'<link rel="alternate" type="application/atom+xml" href="atom.xml">',
        headers=HTML_TYPE,
    )
    assert asyncio.run(discover(server.url("/old"), CONFIG)) == server.url("/engineering/atom.xml")


def test_discover_prefers_real_feed_types_over_generic_json(server: LocalHTTPServer) -> None:
    page = b"""<html><head>
      <link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/7">
      <link rel="alternate" type="application/rss+xml" href="/feed/">
      <link rel="alternate" type="application/rss+xml" href="/comments/feed/">
    </head></html>"""
    server.route("/", body=page, headers=HTML_TYPE)
    assert asyncio.run(discover(server.url("/"), CONFIG)) == server.url("/feed/")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (RSS, "application/rss+xml"),
        (ATOM, "text/xml"),
        (JSON_FEED, "application/feed+json"),
        (RSS, "text/html"),
    ],
)
def test_discover_a_feed_url_returns_it(server: LocalHTTPServer, body: bytes, content_type: str) -> None:
    url = server.route("/feed", body=body, headers={"Content-Type": content_type})
    assert asyncio.run(discover(url, CONFIG)) == url


def test_discover_follows_permanent_redirects_to_the_feed(server: LocalHTTPServer) -> None:
    server.redirect("/rss", "/feed.xml", 301)
    server.route("/feed.xml", body=RSS, headers={"Content-Type": "application/rss+xml"})
    assert asyncio.run(discover(server.url("/rss"), CONFIG)) == server.url("/feed.xml")


def test_discover_keeps_the_url_behind_a_temporary_redirect(server: LocalHTTPServer) -> None:
    server.redirect("/rss", "/feed.xml?v=2", 302)
    server.route("/feed.xml?v=2", body=RSS, headers={"Content-Type": "application/rss+xml"})
    assert asyncio.run(discover(server.url("/rss"), CONFIG)) == server.url("/rss")


def test_discover_gzip_page(server: LocalHTTPServer) -> None:
    page = b'<html><link rel="alternate" type="application/rss+xml" href="/f.xml"></html>'
    server.route("/", body=page, gzip=True, headers=HTML_TYPE)
    assert asyncio.run(discover(server.url("/"), CONFIG)) == server.url("/f.xml")


def test_discover_page_without_feed(server: LocalHTTPServer) -> None:
    server.route("/", body=b"<html><head><title>No feed</title></head></html>", headers=HTML_TYPE)
    with pytest.raises(EngfeedError, match="no feed found"):
        asyncio.run(discover(server.url("/"), CONFIG))


def test_discover_neither_feed_nor_page(server: LocalHTTPServer) -> None:
    server.route("/logo.png", body=b"\x89PNG\r\n\x1a\n....", headers={"Content-Type": "image/png"})
    with pytest.raises(EngfeedError, match=r"neither a feed nor an HTML page \(image/png\)"):
        asyncio.run(discover(server.url("/logo.png"), CONFIG))


def test_discover_http_error(server: LocalHTTPServer) -> None:
    with pytest.raises(EngfeedError, match="HTTP 404 Not Found"):
        asyncio.run(discover(server.url("/missing"), CONFIG))


def test_discover_connection_refused() -> None:
    with pytest.raises(EngfeedError, match="could not fetch"):
        asyncio.run(discover(f"http://127.0.0.1:{unused_port()}/", CONFIG))


def test_discover_bad_urls() -> None:
    with pytest.raises(EngfeedError, match="no URL"):
        asyncio.run(discover("   ", CONFIG))
    with pytest.raises(EngfeedError, match="only http and https"):
        asyncio.run(discover("ftp://example.com/feed", CONFIG))


def test_discover_without_scheme_means_https(server: LocalHTTPServer) -> None:
    # The local server speaks plain HTTP, so the https attempt must fail, naming the https URL.
    with pytest.raises(EngfeedError, match=rf"could not fetch https://127\.0\.0\.1:{server.port}/"):
        asyncio.run(discover(f"127.0.0.1:{server.port}/", CONFIG))
