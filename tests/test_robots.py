"""robots.txt (engfeed.robots): what an answer means, and RFC 9309 matching.

End-to-end behaviour (fetched once per origin, a disallowed page never requested, an
unreachable robots.txt) is in test_fulltext.py; here, the rules themselves.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engfeed.robots import AGENT, MAX_BYTES, RETRY_UNREACHABLE, TTL, RobotsRules, origin_of, robots_url
from engfeed.store import Store

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
SITE = "https://blog.example.com"


def allows(body: str, path: str) -> bool:
    return RobotsRules(SITE, NOW, body=body).allows(SITE + path)


# -- origins -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Blog.Example.com/2026/post?x=1#top", "https://blog.example.com"),
        ("https://blog.example.com:443/a", "https://blog.example.com"),
        ("http://blog.example.com:80/a", "http://blog.example.com"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080"),
        ("https://[2001:db8::1]:8443/a", "https://[2001:db8::1]:8443"),
        ("https://user:secret@blog.example.com/a", "https://blog.example.com"),
        ("ftp://blog.example.com/a", None),
        ("mailto:someone@example.com", None),
        ("/relative/path", None),
        ("http://[::1/broken", None),
        ("https://blog.example.com:99999/a", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_robots_url_is_at_the_root_of_the_origin() -> None:
    assert robots_url("https://blog.example.com") == "https://blog.example.com/robots.txt"


# -- what an answer means (RFC 9309 §2.3.1) ---------------------------------------------------------
def test_a_2xx_body_is_parsed() -> None:
    rules = RobotsRules.from_response(SITE, NOW, 200, b"User-agent: *\nDisallow: /drafts/\n")
    assert not rules.allow_all and not rules.deny_all
    assert rules.allows(SITE + "/posts/1") and not rules.allows(SITE + "/drafts/1")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
def test_4xx_means_unavailable_so_everything_is_allowed(status: int) -> None:
    rules = RobotsRules.from_response(SITE, NOW, status, None)
    assert rules.allow_all and rules.allows(SITE + "/anything")
    assert rules.fresh(NOW + TTL - timedelta(seconds=1)) and not rules.fresh(NOW + TTL)


@pytest.mark.parametrize(
    ("status", "error"), [(500, None), (503, None), (None, "connect timed out after 1s")]
)
def test_5xx_or_no_answer_means_unreachable_so_nothing_is_allowed_for_an_hour(
    status: int | None, error: str | None
) -> None:
    rules = RobotsRules.from_response(SITE, NOW, status, None, error)
    assert rules.deny_all and not rules.allows(SITE + "/")
    assert rules.error == (error or f"HTTP {status}")
    assert rules.fresh(NOW + RETRY_UNREACHABLE - timedelta(seconds=1))
    assert not rules.fresh(NOW + RETRY_UNREACHABLE)


def test_only_the_first_max_bytes_are_read() -> None:
    body = b"User-agent: *\nAllow: /\n" + b"#" * MAX_BYTES + b"\nDisallow: /late/\n"
    rules = RobotsRules.from_response(SITE, NOW, 200, body)
    assert len(rules.body) <= MAX_BYTES
    assert rules.allows(SITE + "/late/1")


def test_undecodable_bytes_do_not_break_the_rules() -> None:
    rules = RobotsRules.from_response(SITE, NOW, 200, b"\xff\xfeUser-agent: *\nDisallow: /x\xff/\n")
    assert rules.allows(SITE + "/a") and isinstance(rules.allows(SITE + "/x"), bool)


# -- matching (RFC 9309 §2.2) -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "path", "allowed"),
    [
        # The longest match wins, in whatever order the rules come (the standard library's
        # parser takes the first: "Allow: /" first would allow /private/).
        ("User-agent: *\nAllow: /\nDisallow: /private/\n", "/private/notes", False),
        ("User-agent: *\nAllow: /\nDisallow: /private/\n", "/public/notes", True),
        ("User-agent: *\nDisallow: /\nAllow: /blog/\n", "/blog/post", True),
        ("User-agent: *\nDisallow: /\nAllow: /blog/\n", "/about", False),
        ("User-agent: *\nDisallow: /blog/\nAllow: /blog/public/\n", "/blog/public/post", True),
        # Equal lengths: Allow wins.
        ("User-agent: *\nDisallow: /page\nAllow: /page\n", "/page", True),
        # Wildcards.
        ("User-agent: *\nDisallow: /*.pdf$\n", "/files/report.pdf", False),
        ("User-agent: *\nDisallow: /*.pdf$\n", "/files/report.pdf?download=1", True),
        ("User-agent: *\nDisallow: /*.pdf$\n", "/files/report.pdfs/index", True),
        ("User-agent: *\nDisallow: /*?replytocom=\n", "/post?replytocom=12", False),
        ("User-agent: *\nDisallow: /*?replytocom=\n", "/post?page=2", True),
        ("User-agent: *\nDisallow: /*/drafts/*/edit\n", "/team/drafts/42/edit", False),
        ("User-agent: *\nDisallow: /*/drafts/*/edit\n", "/team/drafts/42/view", True),
        ("User-agent: *\nDisallow: /exact$\n", "/exact", False),
        ("User-agent: *\nDisallow: /exact$\n", "/exact/more", True),
        ("User-agent: *\nDisallow: *\n", "/anything", False),
        ("User-agent: *\nDisallow: /**/x\n", "/a/b/x", False),
        # Our own group, matched case-insensitively and without a version, beats "*".
        ("User-agent: *\nDisallow: /\n\nUser-agent: EngineeringFeed\nAllow: /\n", "/post", True),
        ("User-agent: *\nAllow: /\n\nUser-agent: engineeringfeed/2.0\nDisallow: /\n", "/post", False),
        ("User-agent: Googlebot\nUser-agent: EngineeringFeed\nDisallow: /a/\n", "/a/1", False),
        # Our group with no rules: everything is allowed, whatever "*" says.
        ("User-agent: *\nDisallow: /\n\nUser-agent: EngineeringFeed\n", "/post", True),
        # Groups for us (or for "*") are merged.
        (
            "User-agent: EngineeringFeed\nDisallow: /a/\n\nUser-agent: EngineeringFeed\nDisallow: /b/\n",
            "/b/1",
            False,
        ),
        (
            "User-agent: *\nDisallow: /a/\nUser-agent: Other\nDisallow: /\nUser-agent: *\nDisallow: /b/\n",
            "/b/1",
            False,
        ),
        # Other agents' groups do not apply.
        ("User-agent: Googlebot\nDisallow: /\n", "/post", True),
        ("User-agent: EngineeringFeedPlus\nDisallow: /\n", "/post", True),
        # An empty Disallow allows; rules before any user-agent line belong to nobody.
        ("User-agent: *\nDisallow:\n", "/post", True),
        ("Disallow: /\nUser-agent: *\nAllow: /\n", "/post", True),
        # Comments, spacing, case of keys, CRLF, a byte-order mark, other records in between.
        ("\ufeffuser-AGENT : * # everyone\r\nDISALLOW :  /tmp/  # scratch\r\n", "/tmp/x", False),
        ("User-agent: *\nCrawl-delay: 10\nSitemap: https://x/s.xml\nDisallow: /tmp/\n", "/tmp/x", False),
        # Percent-encoding: the same path however it is written.
        ("User-agent: *\nDisallow: /caf%C3%A9/\n", "/café/menu", False),
        ("User-agent: *\nDisallow: /café/\n", "/caf%c3%a9/menu", False),
        ("User-agent: *\nDisallow: /%7Ejoe/\n", "/~joe/index.html", False),
        # Paths are case-sensitive.
        ("User-agent: *\nDisallow: /Private/\n", "/private/x", True),
        # No rules at all, or an empty file.
        ("", "/post", True),
        ("# nothing here\n", "/post", True),
    ],
)
def test_rfc_9309_matching(body: str, path: str, allowed: bool) -> None:
    assert allows(body, path) is allowed


def test_the_query_string_is_part_of_the_path() -> None:
    body = "User-agent: *\nDisallow: /search?\n"
    assert not allows(body, "/search?q=x") and allows(body, "/search/help")


def test_our_agent_token() -> None:
    assert AGENT == "EngineeringFeed"


def test_hostile_wildcards_cannot_make_matching_slow() -> None:
    body = "User-agent: *\n" + "".join(f"Disallow: /{'*a' * 200}{i}b$\n" for i in range(200))
    rules = RobotsRules(SITE, NOW, body=body)
    started = time.perf_counter()
    for _ in range(5):
        assert rules.allows(SITE + "/" + "a" * 4000)
    assert time.perf_counter() - started < 5  # a backtracking regex would take centuries


def _reference(pattern: str, path: str) -> bool:
    """RFC 9309 pattern semantics by regular expression (fine for tiny inputs)."""
    anchored = pattern.endswith("$")
    core = pattern[:-1] if anchored else pattern
    regex = "".join(".*" if c == "*" else re.escape(c) for c in core) + ("$" if anchored else "")
    return re.match(regex, path, re.S) is not None


@settings(max_examples=400)
@given(
    rules=st.lists(
        st.tuples(st.booleans(), st.text(alphabet="/ab*", min_size=1, max_size=8), st.booleans()),
        max_size=6,
    ),
    path=st.text(alphabet="/ab", max_size=12),
)
def test_matching_agrees_with_the_rfc_semantics(rules: list[tuple[bool, str, bool]], path: str) -> None:
    patterns = [("/" + p.lstrip("/")) + ("$" if end else "") for _, p, end in rules]
    body = "User-agent: *\n" + "".join(
        f"{'Allow' if allow else 'Disallow'}: {p}\n" for (allow, _, _), p in zip(rules, patterns, strict=True)
    )
    target = "/" + path.lstrip("/")
    best, expected = -1, True
    for (allow, _, _), pattern in zip(rules, patterns, strict=True):
        if _reference(pattern, target) and (len(pattern) > best or (len(pattern) == best and allow)):
            best, expected = len(pattern), allow
    assert allows(body, target) is expected


@given(body=st.text(max_size=400), url=st.text(max_size=60))
def test_any_body_and_url_give_an_answer(body: str, url: str) -> None:
    assert isinstance(RobotsRules(SITE, NOW, body=body).allows(url), bool)
    assert isinstance(RobotsRules(SITE, NOW, body=body).allows(SITE + "/" + url), bool)


# -- the store keeps them per origin ----------------------------------------------------------------
def test_rules_round_trip_through_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    assert store.pages.robots(SITE) is None
    kept = RobotsRules(SITE, NOW, body="User-agent: *\nDisallow: /x/\n")
    store.pages.save_robots(kept)
    store.pages.save_robots(RobotsRules("http://other.example", NOW, deny_all=True))
    got = store.pages.robots(SITE)
    assert got is not None and got.body == kept.body and got.fetched == NOW
    assert not got.allows(SITE + "/x/1") and got.allows(SITE + "/y")
    other = store.pages.robots("http://other.example")
    assert other is not None and other.deny_all and not other.allow_all
    store.pages.save_robots(RobotsRules(SITE, NOW + timedelta(days=1), allow_all=True))  # replaced
    again = store.pages.robots(SITE)
    assert again is not None and again.allow_all and again.body == ""
