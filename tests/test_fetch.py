"""The HTTP edge, against a scripted server on 127.0.0.1: limits, redirects, encodings, errors."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import random
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engfeed.fetch import (
    _PIECE,
    ACCEPT,
    JITTER,
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    FetchConfig,
    FetchResult,
    _Decoder,
    _Failure,
    fetch_all,
    fetch_one,
    make_client,
    next_due,
    parse_retry_after,
)
from engfeed.models import Source
from httpserver import LocalHTTPServer, RequestHandler, Response, http_date, running_server, unused_port

FAST = FetchConfig(connect_timeout=2, read_timeout=2, total_timeout=5, max_bytes=1024 * 1024)
RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    with running_server(monkeypatch) as local:
        yield local


def fetch(
    url: str, config: FetchConfig = FAST, *, etag: str | None = None, last_modified: str | None = None
) -> FetchResult:
    source = Source(name="test", url=url, etag=etag, last_modified=last_modified)
    return asyncio.run(fetch_all([source], config))[0]


# --------------------------------------------------------------------------- basics


def test_200_body_headers_and_validators(server: LocalHTTPServer) -> None:
    url = server.route(
        "/feed.xml",
        body=RSS,
        headers={"Content-Type": "application/rss+xml; charset=utf-8", "X-Thing": "yes"},
        etag='"abc"',
        last_modified="Tue, 01 Oct 2024 10:00:00 GMT",
    )
    result = fetch(url)
    assert result.error is None and result.ok
    assert result.status == 200
    assert result.body == RSS
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.headers["x-thing"] == "yes"
    assert "content-length" not in result.headers  # the body is handed over decoded
    assert result.final_url == url
    assert result.permanent_url is None
    assert result.etag == '"abc"'
    assert result.last_modified == "Tue, 01 Oct 2024 10:00:00 GMT"
    assert not result.not_modified and result.retry_after is None
    sent = server.requests_for("/feed.xml")[0].headers
    assert sent["user-agent"].startswith("EngineeringFeed/")
    assert sent["accept"] == ACCEPT
    assert "gzip" in sent["accept-encoding"]
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_304_sends_conditional_headers(server: LocalHTTPServer) -> None:
    lm = "Tue, 01 Oct 2024 10:00:00 GMT"
    url = server.route("/feed.xml", body=RSS, etag='"v1"', last_modified=lm)
    result = fetch(url, etag='"v1"', last_modified=lm)
    sent = server.requests_for("/feed.xml")[0].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == lm
    assert result.status == 304 and result.not_modified
    assert result.body is None and result.error is None
    assert result.etag == '"v1"' and result.last_modified == lm


def test_304_keeps_stored_validators_when_server_omits_them(server: LocalHTTPServer) -> None:
    url = server.route("/feed.xml", status=304)
    result = fetch(url, etag='"old"', last_modified="Mon, 30 Sep 2024 10:00:00 GMT")
    assert result.not_modified and result.etag == '"old"'
    assert result.last_modified == "Mon, 30 Sep 2024 10:00:00 GMT"


def test_unsendable_stored_validators_are_skipped(server: LocalHTTPServer) -> None:
    url = server.route("/feed.xml", body=RSS)
    result = fetch(url, etag='"caf\u00e9"', last_modified="Tue,\r\n01 Oct 2024")
    assert result.error is None and result.body == RSS
    sent = server.requests_for("/feed.xml")[0].headers
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_changed_etag_gives_full_body(server: LocalHTTPServer) -> None:
    url = server.route("/feed.xml", body=RSS, etag='"v2"')
    result = fetch(url, etag='"v1"')
    assert result.status == 200 and result.body == RSS and result.etag == '"v2"'


def test_404_is_an_error_result(server: LocalHTTPServer) -> None:
    result = fetch(server.url("/missing"), etag='"keep"')
    assert result.status == 404
    assert result.error == "HTTP 404 Not Found"
    assert result.body is None and not result.ok
    assert result.etag == '"keep"'  # validators survive errors


def test_odd_status_codes(server: LocalHTTPServer) -> None:
    def status_line(line: bytes) -> Callable[[RequestHandler], None]:
        def handler(request: RequestHandler) -> None:
            request.wfile.write(line + b"\r\nContent-Length: 0\r\n\r\n")

        return handler

    server.route("/a", status_line(b"HTTP/1.1 404 OK"))
    server.route("/b", status_line(b"HTTP/1.1 599 Custom Trouble"))
    assert fetch(server.url("/a")).error == "HTTP 404 Not Found"
    assert fetch(server.url("/b")).error == "HTTP 599 Custom Trouble"


def test_204_is_an_empty_body(server: LocalHTTPServer) -> None:
    result = fetch(server.route("/empty", status=204))
    assert result.error is None and result.body == b""


# --------------------------------------------------------------------------- retry-after


def test_429_with_retry_after_seconds(server: LocalHTTPServer) -> None:
    result = fetch(server.route("/limited", status=429, headers={"Retry-After": "120"}))
    assert result.status == 429
    assert result.error == "HTTP 429 Too Many Requests"
    assert result.retry_after == 120.0


def test_429_with_retry_after_http_date(server: LocalHTTPServer) -> None:
    url = server.route("/limited", status=429, headers={"Retry-After": http_date(time.time() + 300)})
    result = fetch(url)
    assert result.retry_after is not None and 290 <= result.retry_after <= 301


def test_503_with_retry_after(server: LocalHTTPServer) -> None:
    result = fetch(server.route("/down", status=503, headers={"Retry-After": "30"}))
    assert result.status == 503 and result.error == "HTTP 503 Service Unavailable"
    assert result.retry_after == 30.0


def test_503_without_retry_after(server: LocalHTTPServer) -> None:
    result = fetch(server.route("/down", status=503))
    assert result.error == "HTTP 503 Service Unavailable" and result.retry_after is None


def test_retry_after_garbage_is_ignored(server: LocalHTTPServer) -> None:
    result = fetch(server.route("/limited", status=429, headers={"Retry-After": "soon-ish"}))
    assert result.status == 429 and result.retry_after is None


def test_retry_after_only_on_429_and_503(server: LocalHTTPServer) -> None:
    result = fetch(server.route("/gone", status=410, headers={"Retry-After": "30"}))
    assert result.error == "HTTP 410 Gone" and result.retry_after is None


def test_parse_retry_after() -> None:
    now = datetime(2024, 10, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 45 ") == 45.0
    assert parse_retry_after("999999999") == MAX_RETRY_AFTER
    assert parse_retry_after("Tue, 01 Oct 2024 12:02:00 GMT", now=now) == 120.0
    assert parse_retry_after("Tue, 01 Oct 2024 11:00:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("Tue, 01 Oct 2099 11:00:00 GMT", now=now) == MAX_RETRY_AFTER
    for garbage in (None, "", "-5", "1e9", "tomorrow", "Tue, 99 Foo 2024", "NaN", "inf"):
        assert parse_retry_after(garbage, now=now) is None


# --------------------------------------------------------------------------- redirects


def test_permanent_redirect_chain_sets_permanent_url(server: LocalHTTPServer) -> None:
    server.redirect("/a", server.url("/b"), 301)
    server.redirect("/b", "/c", 308)  # relative Location
    final = server.route("/c", body=RSS)
    result = fetch(server.url("/a"))
    assert result.error is None and result.body == RSS
    assert result.final_url == final
    assert result.permanent_url == final


def test_temporary_redirect_has_no_permanent_url(server: LocalHTTPServer) -> None:
    server.redirect("/a", "/b", 302)
    final = server.route("/b", body=RSS)
    result = fetch(server.url("/a"))
    assert result.body == RSS and result.final_url == final
    assert result.permanent_url is None


def test_one_temporary_hop_spoils_a_permanent_chain(server: LocalHTTPServer) -> None:
    server.redirect("/a", "/b", 301)
    server.redirect("/b", "/c", 307)
    server.redirect("/c", "/d", 301)
    server.route("/d", body=RSS)
    result = fetch(server.url("/a"))
    assert result.body == RSS and result.permanent_url is None


def test_relative_location_forms(server: LocalHTTPServer) -> None:
    server.redirect("/blog/feed", "atom.xml", 301)  # relative to the directory
    server.redirect("/blog/atom.xml", "../x/y.xml?z=1#frag", 301)
    final = server.route("/x/y.xml?z=1", body=RSS)
    result = fetch(server.url("/blog/feed"))
    assert result.body == RSS and result.final_url == final == result.permanent_url


def test_permanent_redirect_to_an_error_has_no_permanent_url(server: LocalHTTPServer) -> None:
    server.redirect("/a", "/missing", 301)
    result = fetch(server.url("/a"))
    assert result.status == 404 and result.permanent_url is None
    assert result.final_url == server.url("/missing")


def test_conditional_headers_follow_redirects(server: LocalHTTPServer) -> None:
    server.redirect("/old", "/new", 301)
    server.route("/new", body=RSS, etag='"e"')
    result = fetch(server.url("/old"), etag='"e"')
    assert result.not_modified and result.permanent_url == server.url("/new")
    assert server.requests_for("/new")[0].headers["if-none-match"] == '"e"'


def test_redirect_loop(server: LocalHTTPServer) -> None:
    server.redirect("/loop1", "/loop2", 302)
    server.redirect("/loop2", "/loop1", 302)
    result = fetch(server.url("/loop1"))
    assert result.error is not None and "redirect loop" in result.error
    assert len(server.requests) == 2


def test_self_redirect_is_a_loop(server: LocalHTTPServer) -> None:
    server.redirect("/self", "/self", 301)
    result = fetch(server.url("/self"))
    assert result.error is not None and "redirect loop" in result.error


def test_too_many_redirects(server: LocalHTTPServer) -> None:
    for i in range(7):
        server.redirect(f"/r{i}", f"/r{i + 1}", 302)
    server.route("/r7", body=RSS)
    result = fetch(server.url("/r0"), FetchConfig(max_redirects=5, total_timeout=5))
    assert result.error == "too many redirects (more than 5)"
    assert len(server.requests) == 6  # the first request plus five hops

    ok = fetch(server.url("/r2"), FetchConfig(max_redirects=5, total_timeout=5))
    assert ok.error is None and ok.body == RSS  # exactly five hops is fine


def test_redirect_without_location(server: LocalHTTPServer) -> None:
    result = fetch(server.route("/r", status=302))
    assert result.status == 302
    assert result.error is not None and "without a Location" in result.error


def test_redirect_to_other_scheme(server: LocalHTTPServer) -> None:
    server.redirect("/r", "ftp://example.com/feed", 301)
    result = fetch(server.url("/r"))
    assert result.error is not None and "only http and https" in result.error


# --------------------------------------------------------------------------- time limits


def test_read_timeout(server: LocalHTTPServer) -> None:
    url = server.route("/slow", body=RSS, delay=3)
    config = FetchConfig(connect_timeout=1, read_timeout=0.5, total_timeout=5)
    start = time.monotonic()
    result = fetch(url, config)
    elapsed = time.monotonic() - start
    assert result.error == "read timed out after 0.5s"
    assert result.status is None and result.body is None
    assert elapsed < 3


def test_drip_feed_ends_at_the_total_budget(server: LocalHTTPServer) -> None:
    # One byte a second never trips the read timeout; the per-source budget must end it.
    url = server.route("/drip", body=b"x" * 100, drip=1.0)
    config = FetchConfig(connect_timeout=1, read_timeout=5, total_timeout=2)
    start = time.monotonic()
    result = fetch(url, config)
    elapsed = time.monotonic() - start
    assert result.error == "timed out after 2s"
    assert result.status == 200 and result.body is None
    assert 1.9 <= elapsed < 2 + 2  # budget plus slack for a loaded machine


def test_budget_covers_redirect_hops(server: LocalHTTPServer) -> None:
    server.route("/a", Response(status=302, headers={"Location": "/b"}, delay=0.6))
    server.route("/b", Response(status=302, headers={"Location": "/c"}, delay=0.6))
    server.route("/c", body=RSS, delay=0.6)
    config = FetchConfig(connect_timeout=1, read_timeout=3, total_timeout=1.0)
    start = time.monotonic()
    result = fetch(server.url("/a"), config)
    assert result.error == "timed out after 1s"
    assert time.monotonic() - start < 1 + 2


# --------------------------------------------------------------------------- size limits and encodings


def test_oversized_body_with_content_length(server: LocalHTTPServer) -> None:
    url = server.route("/big", body=b"x" * (FAST.max_bytes + 1))
    result = fetch(url)
    assert result.error == "body larger than 1 MB" and result.body is None
    assert result.status == 200


def test_oversized_body_without_content_length(server: LocalHTTPServer) -> None:
    url = server.route("/big", Response(body=b"x" * (FAST.max_bytes + 1), content_length=False))
    assert fetch(url).error == "body larger than 1 MB"


def test_body_exactly_at_the_cap(server: LocalHTTPServer) -> None:
    url = server.route("/cap", Response(body=b"x" * FAST.max_bytes, content_length=False))
    result = fetch(url)
    assert result.error is None and result.body is not None and len(result.body) == FAST.max_bytes


def _peak_memory_during(server: LocalHTTPServer, url: str, config: FetchConfig) -> tuple[FetchResult, int]:
    fetch(server.route("/warm-up", body=RSS), config)  # one-time allocations (TLS context, ...)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fetch(url, config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_endless_body_is_cut_with_bounded_memory(server: LocalHTTPServer) -> None:
    url = server.route("/endless", Response(endless=True))
    start = time.monotonic()
    result, peak = _peak_memory_during(server, url, FAST)
    assert result.error == "body larger than 1 MB"
    assert time.monotonic() - start < FAST.total_timeout
    assert peak < 3 * FAST.max_bytes


def test_gzip_body_is_decoded(server: LocalHTTPServer) -> None:
    url = server.route("/feed.xml.gz", body=RSS * 50, gzip=True, headers={"Content-Type": "text/xml"})
    result = fetch(url)
    assert result.error is None and result.body == RSS * 50
    assert "content-encoding" not in result.headers


def test_multi_member_gzip(server: LocalHTTPServer) -> None:
    body = gzip.compress(b"<rss>") + gzip.compress(b"</rss>")
    url = server.route("/multi", body=body, headers={"Content-Encoding": "gzip"})
    assert fetch(url).body == b"<rss></rss>"


@pytest.mark.parametrize(
    "payload", [zlib.compress(RSS), zlib.compress(RSS)[2:-4]], ids=["zlib-deflate", "raw-deflate"]
)
def test_deflate_body_is_decoded(server: LocalHTTPServer, payload: bytes) -> None:
    url = server.route("/deflate", body=payload, headers={"Content-Encoding": "deflate"})
    result = fetch(url)
    assert result.error is None and result.body == RSS


def test_unknown_content_encoding_is_passed_through(server: LocalHTTPServer) -> None:
    url = server.route("/odd", body=RSS, headers={"Content-Encoding": "utf-8"})
    assert fetch(url).body == RSS


def test_brotli_we_did_not_ask_for_is_an_error(server: LocalHTTPServer) -> None:
    url = server.route("/br", body=b"\x0b\x02\x80garbage", headers={"Content-Encoding": "br"})
    assert fetch(url).error == "unsupported content-encoding 'br'"


@pytest.mark.parametrize(
    "body",
    [
        b"this is not gzip at all",
        gzip.compress(RSS)[:10] + b"\xff" * 40,  # valid header, corrupt deflate data
        gzip.compress(RSS * 20)[:-30],  # truncated
    ],
    ids=["not-gzip", "corrupt-data", "truncated"],
)
def test_corrupt_gzip_is_an_error(server: LocalHTTPServer, body: bytes) -> None:
    url = server.route("/bad.gz", body=body, headers={"Content-Encoding": "gzip"})
    result = fetch(url)
    assert result.error is not None and result.error.startswith("bad gzip stream")
    assert result.body is None and result.status == 200


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw-deflate": lambda data: zlib.compress(data)[2:-4],
    "gzip, deflate": lambda data: zlib.compress(gzip.compress(data)),
}


@given(
    payload=st.binary(max_size=3000).map(lambda b: b * 40),
    coding=st.sampled_from(sorted(ENCODERS)),
    cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=6),
)
def test_decoder_is_exact_whatever_the_chunking(payload: bytes, coding: str, cuts: list[int]) -> None:
    encoded = ENCODERS[coding](payload)
    bounds = sorted({0, len(encoded), *(c % (len(encoded) + 1) for c in cuts)})
    decoder = _Decoder("deflate" if coding == "raw-deflate" else coding)
    out = bytearray()
    for start, end in itertools.pairwise(bounds):
        for piece in decoder.decode(encoded[start:end]):
            assert len(piece) <= _PIECE
            out += piece
    for piece in decoder.flush():
        out += piece
    assert out == payload


@given(payload=st.binary(max_size=2000), flips=st.lists(st.integers(min_value=0), min_size=1, max_size=3))
def test_decoder_fails_cleanly_on_corruption(payload: bytes, flips: list[int]) -> None:
    encoded = bytearray(gzip.compress(payload))
    for flip in flips:
        encoded[flip % len(encoded)] ^= 1 << (flip % 8)
    decoder = _Decoder("gzip")
    try:
        list(decoder.decode(bytes(encoded)))
        list(decoder.flush())
    except _Failure as exc:
        assert exc.message.startswith("bad gzip stream")


def test_gzip_bomb_is_cut_at_decompressed_size(server: LocalHTTPServer) -> None:
    bomb = gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < FAST.max_bytes  # small on the wire...
    url = server.route("/bomb", body=bomb, headers={"Content-Encoding": "gzip"})
    result, peak = _peak_memory_during(server, url, FAST)
    assert result.error == "body larger than 1 MB"  # ...cut at the decoded size
    assert peak < 3 * FAST.max_bytes


# --------------------------------------------------------------------------- network failures and bad input


def test_connection_refused() -> None:
    start = time.monotonic()
    result = fetch(f"http://127.0.0.1:{unused_port()}/feed")
    assert result.error is not None and result.error.startswith("connection failed")
    assert result.status is None and result.body is None
    assert time.monotonic() - start < FAST.total_timeout


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/feed.xml",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "feed.example.com/rss",
        "",
        "http://",
        "http://exa mple.com/",
    ],
)
def test_non_http_urls_are_error_results(url: str) -> None:
    result = fetch(url)
    assert result.error is not None and result.status is None
    assert "\n" not in result.error


def test_garbage_instead_of_http(server: LocalHTTPServer) -> None:
    def garbage(request: RequestHandler) -> None:
        request.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    result = fetch(server.route("/x", garbage))
    assert result.error is not None and result.error.startswith("protocol error")


def test_connection_closed_mid_body(server: LocalHTTPServer) -> None:
    def short(request: RequestHandler) -> None:
        request.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<rss>")

    result = fetch(server.route("/x", short))
    assert result.error is not None and result.status == 200 and result.body is None


def test_fetch_one_with_a_plain_client(server: LocalHTTPServer) -> None:
    url = server.route("/feed.xml", body=RSS)

    async def go() -> FetchResult:
        async with make_client(FAST) as client:
            return await fetch_one(client, Source(name="x", url=url), FAST)

    assert asyncio.run(go()).body == RSS


# --------------------------------------------------------------------------- concurrency


def test_per_host_limit_is_enforced(server: LocalHTTPServer) -> None:
    for i in range(6):
        server.route(f"/f{i}", body=RSS, delay=0.3)
    sources = [Source(name=f"s{i}", url=server.url(f"/f{i}")) for i in range(6)]
    config = FetchConfig(concurrency=16, per_host=2, total_timeout=5)
    start = time.monotonic()
    results = asyncio.run(fetch_all(sources, config))
    assert all(r.body == RSS for r in results)
    assert server.max_in_flight == 2
    assert time.monotonic() - start >= 0.85  # three rounds of two


def test_global_limit_is_enforced(server: LocalHTTPServer) -> None:
    for i in range(8):
        server.route(f"/f{i}", body=RSS, delay=0.2)
    sources = [Source(name=f"s{i}", url=server.url(f"/f{i}")) for i in range(8)]
    results = asyncio.run(fetch_all(sources, FetchConfig(concurrency=3, per_host=10, total_timeout=5)))
    assert all(r.ok for r in results)
    assert server.max_in_flight == 3


def test_waiting_for_a_global_slot_does_not_eat_the_budget(server: LocalHTTPServer) -> None:
    # 6 requests of 0.25s through one global slot take 1.5s, past the 1s budget of each
    # source: the wait for a global slot only says how many sources the run has.
    for i in range(6):
        server.route(f"/f{i}", body=RSS, delay=0.25)
    sources = [Source(name=f"s{i}", url=server.url(f"/f{i}")) for i in range(6)]
    config = FetchConfig(concurrency=1, per_host=10, read_timeout=1, total_timeout=1)
    results = asyncio.run(fetch_all(sources, config))
    assert [r.error for r in results] == [None] * 6
    assert server.max_in_flight == 1


def test_the_budget_covers_waiting_for_a_host_slot(server: LocalHTTPServer) -> None:
    # Six slow sources on one host, two at a time: they all end within one budget plus a
    # small margin (before, each started its budget once it had its slot: three budgets).
    for i in range(6):
        server.route(f"/f{i}", body=RSS, delay=5)
    sources = [Source(name=f"s{i}", url=server.url(f"/f{i}")) for i in range(6)]
    config = FetchConfig(per_host=2, read_timeout=10, total_timeout=1)
    started = time.monotonic()
    results = asyncio.run(fetch_all(sources, config))
    assert time.monotonic() - started < 2.5
    assert all(r.error and "timed out" in r.error for r in results)
    # The last two in line never get a slot; the middle two may get one just as the first
    # two give up, and then time out on the request itself.
    waiting = [r.error for r in results if r.error and "waiting behind other requests" in r.error]
    assert len(waiting) >= 2
    assert 2 <= len(server.requests) <= 6 - len(waiting)  # a source that never got a slot sent nothing


def test_one_broken_source_does_not_affect_the_others(server: LocalHTTPServer) -> None:
    server.route("/good", body=RSS)
    server.route("/slow", body=RSS, delay=3)
    server.route("/bad.gz", body=b"nope", headers={"Content-Encoding": "gzip"})
    urls = [
        server.url("/good"),
        server.url("/missing"),
        f"http://127.0.0.1:{unused_port()}/",
        "gopher://example.com/",
        server.url("/good?2"),
        server.url("/slow"),
        server.url("/bad.gz"),
        server.url("/good?3"),
    ]
    seen: list[FetchResult] = []
    config = FetchConfig(connect_timeout=1, read_timeout=1, total_timeout=2)
    results = asyncio.run(
        fetch_all([Source(name=str(i), url=u) for i, u in enumerate(urls)], config, on_result=seen.append)
    )
    assert [r.source.name for r in results] == [str(i) for i in range(len(urls))]
    assert [r.final_url for r in results] == urls
    assert [r.ok for r in results] == [True, False, False, False, True, False, False, True]
    assert all(r.body == RSS for r in results if r.ok)
    assert len(seen) == len(urls) and {id(r) for r in seen} == {id(r) for r in results}


def test_fetch_all_of_nothing() -> None:
    assert asyncio.run(fetch_all([])) == []


# --------------------------------------------------------------------------- scheduling

NOW = datetime(2024, 10, 1, 12, 0, tzinfo=UTC)
intervals = st.integers(min_value=1, max_value=7 * 24 * 3600).map(lambda s: timedelta(seconds=s))
retry_afters = st.none() | st.floats(min_value=0, max_value=MAX_RETRY_AFTER)


def test_next_due_healthy_is_exactly_one_interval() -> None:
    assert next_due(now=NOW, failures=0, interval=timedelta(hours=1), retry_after=None) == NOW + timedelta(
        hours=1
    )


def test_next_due_backoff_doubles_with_jitter() -> None:
    rng = random.Random(7)
    for failures, hours in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 24), (30, 24)):
        delay = (
            next_due(now=NOW, failures=failures, interval=timedelta(hours=1), retry_after=None, rng=rng) - NOW
        )
        assert timedelta(hours=hours * (1 - JITTER)) <= delay <= timedelta(hours=hours * (1 + JITTER))


@given(
    failures=st.integers(min_value=0, max_value=10_000),
    interval=intervals,
    retry_after=retry_afters,
    seed=st.integers(0, 2**32),
)
def test_next_due_is_always_after_now_and_respects_retry_after(
    failures: int, interval: timedelta, retry_after: float | None, seed: int
) -> None:
    due = next_due(
        now=NOW, failures=failures, interval=interval, retry_after=retry_after, rng=random.Random(seed)
    )
    assert due > NOW
    if retry_after is not None:
        assert due >= NOW + timedelta(seconds=retry_after) - timedelta(microseconds=1)
    cap = max(MAX_BACKOFF, interval) * (1 + JITTER)
    assert due - NOW <= max(cap, timedelta(seconds=retry_after or 0)) + timedelta(microseconds=1)


@given(interval=intervals, seed=st.integers(0, 2**32), failures=st.integers(min_value=1, max_value=60))
def test_next_due_is_monotone_in_failures(interval: timedelta, seed: int, failures: int) -> None:
    def due(n: int) -> datetime:
        return next_due(now=NOW, failures=n, interval=interval, retry_after=None, rng=random.Random(seed))

    assert due(failures) <= due(failures + 1)
    # With independent jitter, still strictly later while the doubled delay is under the cap.
    if interval.total_seconds() * 2.0**failures <= MAX_BACKOFF.total_seconds():
        later = next_due(now=NOW, failures=failures + 1, interval=interval, retry_after=None)
        assert due(failures) < later


def test_next_due_without_rng_and_with_a_tiny_interval() -> None:
    assert next_due(now=NOW, failures=0, interval=timedelta(0), retry_after=None) > NOW
    assert next_due(now=NOW, failures=3, interval=timedelta(0), retry_after=None) > NOW
    assert next_due(now=NOW, failures=1, interval=timedelta(hours=1), retry_after=float("nan")) > NOW
