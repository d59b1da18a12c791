"""The smaller hardening points, each against the surface a user meets: OPML limits and
schemes, credentials never shown, control characters never printed, broken angles files,
undecodable queries, unusable store paths, stores from a newer engfeed, undated backfills,
and the memory of importing a hostile feed."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conftest import run_cli
from engfeed.errors import EngfeedError, StoreError
from engfeed.feed import Feed
from engfeed.fetch import FetchConfig
from engfeed.opml import MAX_OUTLINES, parse_opml
from engfeed.parse import UNDATED, backfill_dates, parse_feed
from engfeed.store import Store
from engfeed.web.app import create_app
from httpserver import LocalHTTPServer, Response
from pgserver import NewStore, store_argv

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("cli_env")
run = run_cli


def opml(*urls: str) -> bytes:
    outlines = "".join(f'<outline type="rss" text="F{i}" xmlUrl="{u}"/>' for i, u in enumerate(urls))
    return f'<?xml version="1.0"?><opml version="2.0"><body>{outlines}</body></opml>'.encode()


# -- OPML ---------------------------------------------------------------------------------------
def test_opml_import_skips_and_reports_non_http_outlines(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = new_store("o")
    path = tmp_path / "subs.opml"
    path.write_bytes(
        opml("https://good.example/feed", "file:///etc/passwd", "javascript:alert(1)", "http:///nohost")
    )
    code, out, err = run(capsys, *store_argv(location), "sources", "import", str(path))
    assert code == 0
    assert "added 1 sources, skipped 3" in out
    assert "file:///etc/passwd" in err and "not an http(s) URL" in err
    assert "javascript:alert(1)" in err
    feed = Feed.open(location, embed=False)
    assert [s.url for s in feed.sources()] == ["https://good.example/feed"]
    feed.close()


def test_opml_size_and_outline_caps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many = opml(*(f"https://e.example/{i}" for i in range(MAX_OUTLINES + 1)))
    with pytest.raises(EngfeedError, match="more than 10,000 feeds"):
        parse_opml(many)
    big = tmp_path / "big.opml"
    big.write_bytes(opml("https://e.example/") + b"<!--" + b"x" * (10 * 1024 * 1024) + b"-->")
    code, _, err = run(capsys, "--db", str(tmp_path / "o.db"), "sources", "import", str(big))
    assert code == 1 and "too large" in err and err.count("\n") == 1
    with pytest.raises(EngfeedError, match="declares XML entities"):
        parse_opml(b'<!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body><outline xmlUrl="&a;"/></body></opml>')


# -- credentials ----------------------------------------------------------------------------
def test_credentials_in_feed_urls_are_never_shown(
    new_store: NewStore, capsys: pytest.CaptureFixture[str]
) -> None:
    location = new_store("c")
    db = store_argv(location)
    secret_url = "https://reader:s3cret-pw@feeds.example/private.xml"
    code, out, _ = run(capsys, *db, "sources", "add", secret_url, "--name", "Private", "--no-discover")
    assert code == 0 and "s3cret-pw" not in out and "reader:***@feeds.example" in out
    code, out, _ = run(capsys, *db, "sources", "list")
    assert "s3cret-pw" not in out and "reader:***@" in out
    code, out, _ = run(capsys, *db, "sources", "list", "--json")
    assert json.loads(out)[0]["url"] == "https://reader:***@feeds.example/private.xml"
    feed = Feed.open(location, embed=False)
    assert feed.sources()[0].url == secret_url  # kept for fetching
    assert "s3cret-pw" in feed.export_opml()  # and for the user's own backup
    client = TestClient(create_app(feed, refresh_interval_min=0, allowed_hosts=["testserver"]))
    page = client.get("/sources").text
    api = client.get("/api/sources").text
    assert "s3cret-pw" not in page and "reader:***@feeds.example" in page
    assert "s3cret-pw" not in api and "reader:***@feeds.example" in api


def test_fetch_errors_do_not_carry_passwords(http_server: LocalHTTPServer, new_store: NewStore) -> None:
    target = f"http://user:hunter2@127.0.0.1:{http_server.port}/loop"
    http_server.route("/loop", status=302, headers={"Location": target})
    feed = Feed(Store(new_store("e")), fetch_config=FetchConfig(max_redirects=3))
    feed.store.add_source("Loop", target)
    report = feed.refresh()
    assert report.items[0].error and "hunter2" not in report.items[0].error
    assert "hunter2" not in (feed.sources()[0].error or "")


# -- control characters ------------------------------------------------------------------------
def test_server_text_reaches_the_terminal_without_control_characters(
    http_server: LocalHTTPServer, new_store: NewStore, capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(request) -> None:  # type: ignore[no-untyped-def]
        request.wfile.write(
            b"HTTP/1.0 599 Evil\x1b]0;pwned\x07\x1b[2J\x9b31m phrase\r\nContent-Length: 0\r\n\r\n"
        )

    url = http_server.route("/evil", handler)
    db = store_argv(new_store("t"))
    run(capsys, *db, "sources", "add", url, "--name", "Evil", "--no-discover")
    _, out, err = run(capsys, *db, "refresh")
    _, listing, _ = run(capsys, *db, "sources", "list")
    for text in (out, err, listing):
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "HTTP 599" in err


def test_list_and_show_strip_control_characters_from_feed_text(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = (
        '<rss version="2.0"><channel><title>Esc</title><item><title>Hi &#x1b;[2J there &#x9b;31m</title>'
        "<link>https://e.example/1</link><pubDate>Mon, 03 Mar 2025 10:00:00 GMT</pubDate>"
        "<description>body &#x1b;]0;title&#x7; text</description></item></channel></rss>"
    )
    path = tmp_path / "esc.xml"
    path.write_text(doc, encoding="utf-8")
    db = store_argv(new_store("esc"))
    assert run(capsys, *db, "import", str(path))[0] == 0
    _, out, _ = run(capsys, *db, "list")
    uid = json.loads(run(capsys, *db, "list", "--json")[1])[0]["id"]
    _, shown, _ = run(capsys, *db, "show", uid)
    for text in (out, shown):
        assert not any(ch in text for ch in "\x1b\x07\x9b")


# -- angles file ---------------------------------------------------------------------------------
DEEP_TOML = "x = " + "[" * 5000 + "]" * 5000 + "\n"


def test_a_malformed_angles_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    angles = tmp_path / "angles.toml"
    angles.write_text(DEEP_TOML, encoding="utf-8")
    code, _out, err = run(capsys, "--db", str(tmp_path / "a.db"), "--angles", str(angles), "list")
    assert code == 2
    assert err.count("\n") == 1 and "nested too deeply" in err and "Traceback" not in err


def test_import_with_a_broken_angles_file_commits_nothing(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    angles = tmp_path / "angles.toml"
    angles.write_text("[[angle]\nname = ", encoding="utf-8")
    feed_file = tmp_path / "f.xml"
    feed_file.write_text(
        '<rss version="2.0"><channel><title>F</title><item><title>t</title><link>https://e.example/1</link>'
        "</item></channel></rss>",
        encoding="utf-8",
    )
    location = new_store("i")
    code, _, err = run(capsys, *store_argv(location), "--angles", str(angles), "import", str(feed_file))
    assert code == 2 and "not valid TOML" in err
    feed = Feed.open(location, embed=False)
    assert feed.count() == 0
    feed.close()


def test_the_web_app_serves_bundled_angles_and_a_warning(tmp_path: Path) -> None:
    angles = tmp_path / "angles.toml"
    angles.write_text(DEEP_TOML, encoding="utf-8")
    feed = Feed.open(tmp_path / "w.db", angles_file=angles, embed=False, lenient_angles=True)
    feed.check_angles()
    assert feed.angles_warning and "Using the bundled angles" in feed.angles_warning
    client = TestClient(create_app(feed, refresh_interval_min=0, allowed_hosts=["testserver"]))
    for path in ("/", "/sources", "/api/angles"):
        r = client.get(path)
        assert r.status_code == 200, path
    assert 'id="config-warning"' in client.get("/").text
    assert len(client.get("/api/angles").json()["angles"]) == 7


# -- search --------------------------------------------------------------------------------------
def test_search_with_undecodable_bytes_in_the_query() -> None:
    env = {**os.environ, "ENGFEED_EMBED": "0", "PYTHONPATH": str(ROOT / "src")}
    db = Path(os.environ.get("TMPDIR", "/tmp")) / f"engfeed-utf8-{os.getpid()}.db"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "engfeed", "--db", str(db), "search", b"\xff cache"],
            env=env,
            capture_output=True,
            timeout=120,
        )
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr
    assert b"no matches" in proc.stdout
    # one line says how the argument was read; never a traceback
    assert (
        proc.stderr
        == "engfeed: warning: an argument was not valid UTF-8; read it as '\ufffd cache'\n".encode()
    )


# -- store paths and versions -------------------------------------------------------------------
def test_unusable_store_paths_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [str(a_file / "x.db"), "/dev/null", str(tmp_path), "/proc/engfeed-nonexistent/x.db"]
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append(str(locked / "sub" / "x.db"))
    for path in cases:
        code, _, err = run(capsys, "--db", path, "list")
        assert code == 2, (path, err)
        assert err.startswith(f"engfeed: error: cannot open store {path}") and err.count("\n") == 1, err
        assert "internal error" not in err


def test_a_store_from_a_newer_engfeed_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "new.db"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations(version) VALUES (999)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match=r"written by a newer engfeed \(schema 999 > \d+\); upgrade engfeed"):
        Store(db)
    code, _, err = run(capsys, "--db", str(db), "list")
    assert code == 2 and "newer engfeed" in err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


# -- undated entries -----------------------------------------------------------------------------
def undated_feed(*, dated: bool) -> bytes:
    items = "".join(
        f"<item><title>Undated {i}</title><link>https://e.example/u{i}</link></item>" for i in range(3)
    )
    if dated:
        items += (
            "<item><title>Dated new</title><link>https://e.example/d1</link>"
            "<pubDate>Mon, 03 Mar 2025 10:00:00 GMT</pubDate></item>"
            "<item><title>Dated old</title><link>https://e.example/d2</link>"
            "<pubDate>Fri, 01 Jan 2021 10:00:00 GMT</pubDate></item>"
        )
    return f'<rss version="2.0"><channel><title>U</title>{items}</channel></rss>'.encode()


def test_backfill_places_undated_entries_below_the_oldest_dated_one() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    articles = backfill_dates(parse_feed(undated_feed(dated=True), now=now).articles)
    by_title = {a.title: a for a in articles}
    oldest = by_title["Dated old"].published
    undated = [by_title[f"Undated {i}"] for i in range(3)]
    assert all(a.date_estimated and a.published < oldest for a in undated)
    assert [a.published for a in undated] == sorted((a.published for a in undated), reverse=True)
    alone = backfill_dates(parse_feed(undated_feed(dated=False), now=now).articles)
    assert all(a.date_estimated and a.published < UNDATED for a in alone)


def test_import_does_not_let_undated_entries_flood_the_top(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dated, undated = tmp_path / "dated.xml", tmp_path / "undated.xml"
    dated.write_bytes(undated_feed(dated=True))
    undated.write_text(
        '<rss version="2.0"><channel><title>Tweets</title>'
        + "".join(
            f"<item><title>Tweet {i}</title><link>https://t.example/{i}</link></item>" for i in range(5)
        )
        + "</channel></rss>",
        encoding="utf-8",
    )
    db = str(tmp_path / "u.db")
    assert run(capsys, "--db", db, "import", str(dated), str(undated))[0] == 0
    items = json.loads(run(capsys, "--db", db, "list", "--json", "--limit", "50")[1])
    assert [i["title"] for i in items[:2]] == ["Dated new", "Dated old"]
    assert all(i["date_estimated"] for i in items[2:])
    assert [i["title"] for i in items[-5:]] == [f"Tweet {i}" for i in range(5)]
    _, text, _ = run(capsys, "--db", db, "list", "--limit", "50")
    assert "undated" in text
    page = TestClient(
        create_app(Feed.open(db, embed=False), refresh_interval_min=0, allowed_hosts=["testserver"])
    )
    html = page.get("/").text
    assert "Date unknown" in html and "(approx.)" in html


def test_first_fetch_backfills_but_a_later_refresh_keeps_new_undated_entries_new(
    tmp_path: Path, http_server: LocalHTTPServer
) -> None:
    body = undated_feed(dated=True)
    http_server.route("/feed.xml", Response(body=body))
    feed = Feed(Store(tmp_path / "r.db"))
    feed.store.add_source("U", http_server.url("/feed.xml"))
    feed.refresh()
    first = {a.title: a for a in feed.articles(limit=50).articles}
    assert first["Undated 0"].published < first["Dated old"].published
    later = body.replace(
        b"<channel><title>U</title>",
        b"<channel><title>U</title><item><title>Fresh</title><link>https://e.example/fresh</link></item>",
    )
    http_server.route("/feed.xml", Response(body=later))
    feed.refresh()
    listing = feed.articles(limit=50).articles
    assert listing[0].title == "Fresh" and listing[0].date_estimated
    assert (datetime.now(UTC) - listing[0].published).total_seconds() < 600
    again = {a.title: a for a in listing}
    assert again["Undated 0"].published == first["Undated 0"].published  # kept across refreshes


# -- memory of a hostile import --------------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak from /proc")
def test_importing_hostile_feeds_stays_under_400_mb(tmp_path: Path) -> None:
    entity = (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "'
        + "A" * 1000
        + '">\n]>\n<rss version="2.0"><channel>'
        "<title>t</title><item><title>&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;</title>"
        "<link>http://e.example/1</link><description>"
        + "&a;" * 30_000
        + "</description></item></channel></rss>"
    )
    (tmp_path / "entity.xml").write_text(entity, encoding="utf-8")
    big = {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [
            {
                "id": "1",
                "url": "https://e.example/j",
                "title": "A" * 2_000_000,
                "authors": [{"name": "B" * 1_000_000}],
                "tags": [f"t{i}" for i in range(20_000)],
                "content_html": "<p>" + "word " * 1_000_000 + "</p>",
            }
        ],
    }
    (tmp_path / "big.json").write_text(json.dumps(big), encoding="utf-8")
    items = "".join(
        f"<item><title>t{i}</title><link>http://e.example/{i}</link></item>" for i in range(150_000)
    )
    (tmp_path / "many.xml").write_text(f'<rss version="2.0"><channel><title>m</title>{items}</channel></rss>')
    env = {**os.environ, "ENGFEED_EMBED": "0", "PYTHONPATH": str(ROOT / "src")}
    # VmHWM is the peak of this process's own memory; ru_maxrss of a child also counts the
    # (v)forked parent's pages, i.e. the test worker's, before exec.
    wrapper = (
        "import re, sys\n"
        "from engfeed.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "status = open('/proc/self/status').read()\n"
        "print('PEAK_KB', re.search(r'VmHWM:\\s*(\\d+)', status).group(1), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, "--db", str(tmp_path / "m.db"), "import", str(tmp_path)],
        env=env,
        capture_output=True,
        timeout=300,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stderr.rsplit("PEAK_KB", 1)[1].split()[0]) / 1024
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"
    store = Store(tmp_path / "m.db")
    [(longest,)] = store.conn.execute(
        "SELECT max(length(title) + length(body) + length(content_html)) FROM articles"
    )
    assert longest <= 500 + 2 * 512 * 1024
