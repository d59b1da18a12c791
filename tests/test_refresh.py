"""Refresh end to end: fetch → parse → store through the facade, against a local server.

Hostile input is routine on the open web; every case must end, within its source's time
budget, as stored articles or a recorded error for that source, never affecting the others.
"""

from __future__ import annotations

import gzip
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engfeed import feed as feed_module
from engfeed.errors import DatabaseUnavailable
from engfeed.feed import Feed
from engfeed.fetch import FetchConfig
from engfeed.store import Store
from feedgen import rss
from httpserver import LocalHTTPServer, Response
from pgserver import NewStore

BUDGET = 3.0
CONFIG = FetchConfig(connect_timeout=1.0, read_timeout=1.5, total_timeout=BUDGET, max_bytes=2 * 1024 * 1024)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"> <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"> <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"> <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
 <!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;"> <!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">
]>
<rss version="2.0"><channel><title>Bomb</title><link>https://bomb.example/</link>
<item><title>&i;</title><link>https://bomb.example/1</link></item></channel></rss>"""


def make_feed(new_store: NewStore, config: FetchConfig = CONFIG) -> Feed:
    """A Feed over a new store on the test's backend (each test runs on both)."""
    return Feed(Store(new_store("feed")), fetch_config=config, embedder=None)


def add(feed: Feed, server: LocalHTTPServer, name: str, path: str, response: Response) -> None:
    feed.store.add_source(name, server.route(path, response))


def test_good_source_is_stored_with_health(
    new_store: NewStore, tmp_path: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    add(feed, http_server, "Acme", "/feed.xml", Response(body=rss(12), etag='"v1"'))
    report = feed.refresh()
    assert [(r.name, r.status, r.new) for r in report.items] == [("Acme", "ok", 12)]
    page = feed.articles(limit=50)
    assert page.total == 12
    assert page.articles[0].title.endswith("(part 0)")  # newest first
    assert "utm_" not in page.articles[0].url
    assert "appeared first on" not in page.articles[0].excerpt
    src = feed.source("Acme")
    assert src is not None and src.last_success is not None and src.failures == 0
    assert src.http_status == 200 and src.etag == '"v1"'
    assert src.next_due is not None and src.next_due > datetime.now(UTC) + timedelta(minutes=20)


def test_not_modified_costs_no_parsing(
    new_store: NewStore, tmp_path: Path, http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = make_feed(new_store)
    add(feed, http_server, "Acme", "/feed.xml", Response(body=rss(5), etag='"v1"'))
    feed.refresh()
    calls = []
    real = feed_module.parse_feed
    monkeypatch.setattr(feed_module, "parse_feed", lambda *a, **k: calls.append(1) or real(*a, **k))
    report = feed.refresh()
    assert report.items[0].status == "not modified"
    assert calls == []
    assert http_server.requests_for("/feed.xml")[-1].headers.get("if-none-match") == '"v1"'


def test_permanent_redirect_updates_stored_url(
    new_store: NewStore, tmp_path: Path, http_server: LocalHTTPServer
) -> None:
    feed = make_feed(new_store)
    http_server.route("/new.xml", Response(body=rss(3)))
    add(feed, http_server, "Acme", "/old.xml", Response(status=301, headers={"Location": "/new.xml"}))
    feed.refresh()
    src = feed.source("Acme")
    assert src is not None and src.url == http_server.url("/new.xml")
    assert feed.count() == 3


def test_retry_after_and_backoff(new_store: NewStore, tmp_path: Path, http_server: LocalHTTPServer) -> None:
    feed = make_feed(new_store)
    add(feed, http_server, "Busy", "/busy", Response(status=429, headers={"Retry-After": "7200"}))
    add(feed, http_server, "Gone", "/gone", Response(status=404))
    feed.refresh()
    busy, gone = feed.source("Busy"), feed.source("Gone")
    assert busy is not None and gone is not None
    assert busy.next_due is not None and busy.next_due >= datetime.now(UTC) + timedelta(seconds=7000)
    assert busy.http_status == 429 and busy.failures == 1 and busy.error
    dues = []
    for _ in range(3):
        feed.refresh(["Gone"])  # a failing source is retried (never disabled), ever later
        again = feed.source("Gone")
        assert again is not None and again.next_due is not None
        dues.append(again.next_due)
    assert again.failures == 4 and "404" in (again.error or "")
    assert dues[0] < dues[2]
    assert [s.name for s in feed.refresh(only_due=True).items] == []  # nothing due right now


def hostile_routes(server: LocalHTTPServer, secret: Path) -> dict[str, Response]:
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<rss version="2.0"><channel><title>XXE</title><link>https://xxe.example/</link>'
        "<item><title>leak &x;</title><link>https://xxe.example/1</link><description>&x;</description>"
        "</item></channel></rss>"
    ).encode()
    return {
        "bomb": Response(body=BILLION_LAUGHS),
        "xxe": Response(body=xxe),
        "endless": Response(endless=True, body=b"<rss><channel>" + b"x" * 65536),
        "drip": Response(drip=1.0, body=rss(2)),
        "loop": Response(status=302, headers={"Location": "/loop"}),
        "badgzip": Response(body=b"\x1f\x8b\x08\x00" + os.urandom(300), headers={"Content-Encoding": "gzip"}),
        "junk": Response(body=os.urandom(5000), headers={"Content-Type": "application/octet-stream"}),
        "html": Response(
            body=b"<!doctype html><html><head><title>Hi</title></head><body>no feed</body></html>"
        ),
        "big": Response(body=gzip.compress(rss(5000, prefix="big")), headers={"Content-Encoding": "gzip"}),
        "good": Response(body=rss(4, prefix="good")),
    }


def test_hostile_sources_end_within_budget_and_never_affect_others(
    new_store: NewStore, tmp_path: Path, http_server: LocalHTTPServer
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    feed = make_feed(new_store)
    for name, response in hostile_routes(http_server, secret).items():
        add(feed, http_server, name, f"/{name}", response)
    started = time.monotonic()
    report = feed.refresh()
    elapsed = time.monotonic() - started
    by_name = {r.name: r for r in report.items}
    assert set(by_name) == {
        "bomb",
        "xxe",
        "endless",
        "drip",
        "loop",
        "badgzip",
        "junk",
        "html",
        "big",
        "good",
    }
    for r in report.items:
        assert (r.status == "failed" and r.error) or r.status == "ok", r  # stored or a recorded error
    for name in ("endless", "drip", "loop", "badgzip", "junk", "html"):
        assert by_name[name].status == "failed", name
        src = feed.source(name)
        assert src is not None and src.error and src.failures == 1
    assert by_name["good"].new == 4
    assert by_name["big"].new == 5000
    assert feed.count() >= 5004
    dump = "\n".join(a.title + a.excerpt for a in feed.articles(limit=10_000).articles)
    assert "TOP-SECRET-MARKER" not in dump
    assert "aaaaaaaaaa" * 100 not in dump  # the bomb never expanded
    # It ends: fetches run concurrently under per-source budgets (timings are tested in
    # test_fetch.py); this bound only catches a hang, not slowness.
    assert elapsed < 300


def test_exception_while_storing_fails_that_source_only(
    new_store: NewStore, tmp_path: Path, http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = make_feed(new_store)
    add(feed, http_server, "Good", "/good", Response(body=rss(3, prefix="g")))
    add(feed, http_server, "Bad", "/bad", Response(body=rss(3, prefix="b", site="https://bad.example")))
    real = feed.store.upsert_articles

    def flaky(articles, *, source_id, conn):  # type: ignore[no-untyped-def]
        result = real(articles, source_id=source_id, conn=conn)  # rows written, then a crash
        if articles and articles[0].source == "Bad":
            raise OSError("disk full")
        return result

    monkeypatch.setattr(feed.store, "upsert_articles", flaky)
    report = {r.name: r for r in feed.refresh().items}
    assert report["Good"].status == "ok" and report["Bad"].status == "failed"
    assert "disk full" in (report["Bad"].error or "")
    assert {a.source for a in feed.articles(limit=50).articles} == {"Good"}  # nothing half-written
    assert feed.count() == 3


def test_a_database_outage_stops_the_refresh_and_blames_no_source(
    new_store: NewStore, http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage is not a source's failure: no feed is marked failed (its backoff would
    grow), and the refresh ends with the outage, for the CLI (exit 75) or the job queue
    (retry) to handle."""
    feed = make_feed(new_store)
    for i in range(4):
        add(
            feed,
            http_server,
            f"S{i}",
            f"/s{i}",
            Response(body=rss(2, prefix=f"s{i}", site=f"https://{i}.example")),
        )

    def away(*args: object, **kwargs: object) -> object:
        raise DatabaseUnavailable("the database did not answer: server closed the connection")

    monkeypatch.setattr(feed.store, "upsert_articles", away)
    with pytest.raises(DatabaseUnavailable):
        feed.refresh()
    monkeypatch.undo()
    assert [s.failures for s in feed.sources()] == [0, 0, 0, 0]
    assert feed.count() == 0
    assert {r.status for r in feed.refresh().items} == {"ok"}  # back: everything is fetched
    assert feed.count() == 8


KILLER = """
import sys
from engfeed.feed import Feed
from engfeed.fetch import FetchConfig
from engfeed.store import Store
feed = Feed(Store(sys.argv[1]), fetch_config=FetchConfig(total_timeout=60, read_timeout=60), embedder=None)
feed.refresh()
"""


def test_killed_mid_refresh_keeps_committed_sources_whole(
    tmp_path: Path, http_server: LocalHTTPServer
) -> None:
    db = tmp_path / "kill.db"
    store = Store(db)
    for i in range(4):
        url = http_server.route(
            f"/f{i}", Response(body=rss(50, prefix=f"s{i}", site=f"https://s{i}.example"))
        )
        store.add_source(f"S{i}", url)
    store.add_source("Slow", http_server.route("/slow", Response(drip=0.5, body=rss(3, prefix="slow"))))
    store.close()
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(db)], env={**os.environ, "ENGFEED_EMBED": "0"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with sqlite3.connect(db) as probe:
                done = probe.execute("SELECT count(DISTINCT source_name) FROM articles").fetchone()[0]
            if done >= 4:
                break
        assert proc.poll() is None, "refresh finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    after = Store(db)
    assert after.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = dict(after.source_counts())
    assert counts == {f"S{i}": 50 for i in range(4)}  # whole sources only; the slow one absent
    fts = after.conn.execute("SELECT count(*) FROM articles_fts WHERE articles_fts MATCH 'queue'").fetchone()[
        0
    ]
    assert fts > 0
