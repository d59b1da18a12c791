from __future__ import annotations

import pytest

from engfeed.errors import EngfeedError
from engfeed.models import Source
from engfeed.naming import short_name
from engfeed.opml import default_sources, parse_opml, to_opml

REQUIRED = {
    "Slack", "Meta", "AWS", "Microsoft", "Spotify", "Airbnb", "Dropbox", "Google",
    "LinkedIn", "Stripe", "Discord", "Netflix", "Uber", "DoorDash",
}  # fmt: skip


def test_default_sources_cover_the_seed_page_and_reading_list() -> None:
    outlines = default_sources()
    names = {o.name for o in outlines}
    assert len(outlines) >= 40
    assert names >= REQUIRED
    assert any("old new thing" in o.name.lower() and "oldnewthing" in o.url for o in outlines)
    assert len({o.url for o in outlines}) == len(outlines)
    for o in outlines:
        assert o.url.startswith(("https://", "http://")) and o.site_url.startswith("http")
        assert not o.name.lower().startswith("engineering at")


def test_opml_roundtrip() -> None:
    sources = [
        Source(name="Meta", url="https://engineering.fb.com/feed/", site_url="https://engineering.fb.com/")
    ]
    back = parse_opml(to_opml(sources))
    assert [(o.name, o.url, o.site_url) for o in back] == [
        ("Meta", "https://engineering.fb.com/feed/", "https://engineering.fb.com/")
    ]


def test_nested_outlines_and_duplicates() -> None:
    data = b"""<opml version="1.0"><body><outline text="Blogs">
      <outline text="A" xmlUrl="https://a.example/feed"/>
      <outline text="A again" xmlUrl="https://a.example/feed"/>
      <outline title="B" xmlUrl="https://b.example/rss"/></outline></body></opml>"""
    assert [o.name for o in parse_opml(data)] == ["A", "B"]


@pytest.mark.parametrize("data", [b"", b"<html><body>hi</body></html>", b"\x00\xff garbage"])
def test_bad_opml_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(EngfeedError, match="OPML"):
        parse_opml(data)


def test_opml_never_reads_external_entities(tmp_path: object) -> None:
    data = b"""<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
    <opml><body><outline text="&x;" xmlUrl="https://a.example/f"/></body></opml>"""
    try:
        outlines = parse_opml(data)
    except EngfeedError:
        return
    assert all("root:" not in o.name for o in outlines)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Engineering at Meta", "Meta"),
        ("The Netflix Tech Blog - Medium", "Netflix"),
        ("Stories by Netflix Technology Blog on Medium", "Netflix"),
        ("Slack Engineering", "Slack"),
        ("Dropbox Tech Blog", "Dropbox"),
        ("The GitHub Blog", "GitHub"),
        ("AWS News Blog", "AWS"),
    ],
)
def test_short_names(title: str, expected: str) -> None:
    assert short_name(title) == expected


def test_short_name_falls_back_to_host() -> None:
    assert short_name("", "https://blog.cloudflare.com/") == "Cloudflare"
    assert short_name("", "", fallback="file-stem") == "file-stem"


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://engineering.acme.co.uk/", "Acme"),  # not "Uk": two such feeds would share it
        ("https://engineering.widgets.co.uk/", "Widgets"),
        ("https://tech.example.com.au/feed", "Example"),
        ("https://engineering.fb.com/", "Fb"),
        ("http://127.0.0.1:8765/slow.xml", "127.0.0.1:8765"),  # not "1"
        ("http://[::1]:8080/feed", "[::1]:8080"),
        ("https://user:secret@10.1.2.3/feed", "10.1.2.3"),  # never the credentials
        ("http://localhost/feed", "Localhost"),
        ("http://[bad", "Unknown source"),
    ],
)
def test_short_name_from_hosts(link: str, expected: str) -> None:
    assert short_name("", link) == expected
