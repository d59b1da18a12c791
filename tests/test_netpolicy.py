"""The address policy of the fetcher: every fetch, redirect hop and discovered feed link is
checked on its resolved addresses, and a refusal happens before any connection.

Only servers of the test's own, on 127.0.0.1, are ever connected to. Tests that name any
other address (a metadata endpoint, a private range) also install ``loopback_only``, which
makes any connection attempt to a non-loopback address fail the test instead of leaving
the machine: the policy is checked, and a broken policy could not send a packet anyway.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engfeed.discover import discover
from engfeed.errors import EngfeedError
from engfeed.feed import Feed
from engfeed.fetch import FetchConfig, fetch_all
from engfeed.models import Source
from engfeed.netpolicy import AddressPolicy, AddressRefused, address_kind
from engfeed.store import Store
from httpserver import LocalHTTPServer, Response, fake_resolver

RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Local</title>'
    b"<item><title>One</title><link>http://127.0.0.1/1</link></item></channel></rss>"
)
LOCAL_REFUSAL = "a loopback address; set ENGFEED_FETCH_PRIVATE=1 to allow local feeds"


def fetch(url: str, config: FetchConfig) -> str | None:
    [result] = asyncio.run(fetch_all([Source(name="s", url=url)], config))
    return result.error


# -- classification ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd00:ec2::254", "private"),
        ("198.51.100.7", "private"),
        ("not an address", "reserved"),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(address) == kind


def test_policy_decisions() -> None:
    strict, lenient = AddressPolicy(allow_private=False), AddressPolicy(allow_private=True)
    assert strict.refusal("h", "127.0.0.1") is not None
    assert lenient.refusal("h", "127.0.0.1") is None
    assert lenient.refusal("h", "10.0.0.1") is None
    for always in ("169.254.169.254", "0.0.0.0", "224.0.0.1"):
        assert lenient.refusal("h", always) is not None
    assert lenient.refusal("h", "1.1.1.1") is None


# -- fetching: refused before any connection -------------------------------------------------
def test_loopback_is_refused_when_private_fetching_is_off(http_server: LocalHTTPServer) -> None:
    url = http_server.route("/feed.xml", body=RSS)
    error = fetch(url, FetchConfig(allow_private=False))
    assert error == f"refused: {url} resolves to 127.0.0.1, {LOCAL_REFUSAL}"
    assert http_server.requests == []  # the server's own log: no request reached it
    assert fetch(url, FetchConfig(allow_private=True)) is None
    assert len(http_server.requests) == 1


@pytest.mark.parametrize("host", ["0x7f.1", "2130706433", "127.1", "[::ffff:127.0.0.1]"])
def test_numeric_spellings_of_loopback_are_caught(http_server: LocalHTTPServer, host: str) -> None:
    http_server.route("/feed.xml", body=RSS)
    url = f"http://{host}:{http_server.port}/feed.xml"
    error = fetch(url, FetchConfig(allow_private=False))
    assert error is not None and error.startswith(f"refused: {url} resolves to ")
    assert LOCAL_REFUSAL in error
    assert http_server.requests == []


def test_an_octal_spelling_is_not_even_a_valid_url(http_server: LocalHTTPServer) -> None:
    http_server.route("/feed.xml", body=RSS)
    error = fetch(f"http://0177.0.0.1:{http_server.port}/feed.xml", FetchConfig(allow_private=True))
    assert error is not None and error.startswith("invalid URL")
    assert http_server.requests == []


def test_localhost_by_name_is_refused(http_server: LocalHTTPServer) -> None:
    http_server.route("/feed.xml", body=RSS)
    error = fetch(f"http://localhost:{http_server.port}/feed.xml", FetchConfig(allow_private=False))
    assert error is not None and "a loopback address" in error and "ENGFEED_FETCH_PRIVATE=1" in error
    assert http_server.requests == []


def test_link_local_and_metadata_are_always_refused(loopback_only: list[str]) -> None:
    config = FetchConfig(allow_private=True, resolver=fake_resolver({"evil.test": ["169.254.169.254"]}))
    error = fetch("http://169.254.169.254/latest/meta-data/", config)
    assert error is not None and error.startswith(
        "refused: http://169.254.169.254/latest/meta-data/ resolves to 169.254.169.254, a link-local address"
    )
    assert "never fetched" in error
    error = fetch("http://evil.test/feed", config)
    assert error is not None and "resolves to 169.254.169.254, a link-local address" in error
    error = fetch("http://metadata.google.internal/computeMetadata/v1/", config)
    assert error == "refused: http://metadata.google.internal/computeMetadata/v1/ is a cloud metadata service"
    assert fetch("http://0.0.0.0:9/", config) is not None


def test_a_host_resolving_to_one_refused_address_is_refused_whole(loopback_only: list[str]) -> None:
    config = FetchConfig(resolver=fake_resolver({"rebind.test": ["127.0.0.1", "169.254.169.254"]}))
    error = fetch("http://rebind.test/feed", config)
    assert error is not None and "169.254.169.254, a link-local address" in error


def test_every_redirect_hop_is_checked(http_server: LocalHTTPServer, loopback_only: list[str]) -> None:
    http_server.route("/to-metadata", status=302, headers={"Location": "http://169.254.169.254/latest/"})
    http_server.route("/to-name", status=301, headers={"Location": "http://evil.test/x"})
    config = FetchConfig(resolver=fake_resolver({"evil.test": ["10.0.0.1", "fe80::1"]}))
    error = fetch(http_server.url("/to-metadata"), config)
    assert error is not None and error.startswith("refused: http://169.254.169.254/latest/ resolves to")
    error = fetch(http_server.url("/to-name"), config)
    assert error is not None and "fe80::1, a link-local address" in error
    # ...and with private fetching off, a redirect back to loopback is refused too.
    http_server.route("/loop", status=302, headers={"Location": http_server.url("/feed.xml")})
    http_server.route("/feed.xml", body=RSS)
    strict = FetchConfig(allow_private=False, resolver=fake_resolver({}))
    assert "a loopback address" in (fetch(http_server.url("/loop"), strict) or "")
    assert http_server.requests_for("/feed.xml") == []


def test_a_discovered_feed_link_is_checked(http_server: LocalHTTPServer, loopback_only: list[str]) -> None:
    page = b'<html><head><link rel="alternate" type="application/rss+xml" href="http://169.254.169.254/feed"></head></html>'
    url = http_server.route("/blog", body=page, headers={"Content-Type": "text/html"})
    with pytest.raises(
        EngfeedError, match=r"refused: http://169.254.169.254/feed resolves to 169.254.169.254"
    ):
        asyncio.run(discover(url, FetchConfig()))


def test_add_source_refuses_a_page_announcing_a_metadata_feed(
    tmp_path: Path, http_server: LocalHTTPServer, loopback_only: list[str]
) -> None:
    page = b'<html><head><link rel="alternate" type="application/atom+xml" href="http://metadata.goog/feed"></head></html>'
    url = http_server.route("/blog", body=page, headers={"Content-Type": "text/html"})
    feed = Feed(Store(tmp_path / "d.db"))
    with pytest.raises(EngfeedError, match="cloud metadata service"):
        feed.add_source(url)
    assert feed.sources() == []


def test_the_setting_reaches_the_facade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGFEED_FETCH_PRIVATE", "0")
    feed = Feed.open(tmp_path / "p.db", embed=False)
    assert feed.fetch_config.allow_private is False
    monkeypatch.delenv("ENGFEED_FETCH_PRIVATE")
    assert Feed.open(tmp_path / "p.db", embed=False).fetch_config.allow_private is True


def test_refusal_message_words_each_kind() -> None:
    assert (
        AddressRefused("h", "10.0.0.1", "private")
        .describe("http://h/")
        .endswith("a private address; set ENGFEED_FETCH_PRIVATE=1 to allow local feeds")
    )
    assert "an unspecified address" in AddressRefused("h", "0.0.0.0", "unspecified").describe("http://h/")


def test_refresh_records_the_refusal_as_the_sources_error(
    tmp_path: Path, http_server: LocalHTTPServer
) -> None:
    url = http_server.route("/feed.xml", Response(body=RSS))
    feed = Feed(Store(tmp_path / "r.db"), fetch_config=FetchConfig(allow_private=False))
    feed.store.add_source("Local", url)
    report = feed.refresh()
    assert report.items[0].status == "failed"
    assert report.items[0].error == f"refused: {url} resolves to 127.0.0.1, {LOCAL_REFUSAL}"
    assert http_server.requests == []
