"""The reading workflow: saved/read/notes per user, the CLI contract, the reading list as
Markdown both ways (the seed's own file and harder lists of our own), the JSON API, and
"nothing a user wrote is ever lost"."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from conftest import SHARED, run_cli
from engfeed.errors import EngfeedError, StoreError
from engfeed.feed import Feed
from engfeed.readinglist import MAX_NOTE_BYTES, Entry, NoteTooLarge, parse, render
from engfeed.store import Store
from engfeed.web.app import create_app
from feedgen import rss
from pgserver import store_location

ROOT = Path(__file__).resolve().parents[1]
SEED = SHARED / "seeds" / "engineering-blogs-list.md"


pytestmark = pytest.mark.usefixtures("cli_env")
run = run_cli


@pytest.fixture
def db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest, backend: str
) -> str:
    """A store on each backend with six articles (``--db`` takes a PostgreSQL URL too)."""
    path = tmp_path / "acme.xml"
    path.write_bytes(rss(6))
    store = store_location(request, backend, "r")
    assert run(capsys, "--db", store, "import", str(path))[0] == 0
    return store


def ids(capsys: pytest.CaptureFixture[str], db: str) -> list[str]:
    return [a["id"] for a in json.loads(run(capsys, "--db", db, "list", "--json")[1])]


# -- the CLI contract -----------------------------------------------------------------------------
def test_save_note_read_and_the_json_fields(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second, third = ids(capsys, db)[:3]
    listing = json.loads(run(capsys, "--db", db, "list", "--json")[1])
    assert {(a["saved"], a["read"], a["note"]) for a in listing} == {(False, False, None)}

    assert run(capsys, "--db", db, "save", first, second, "--note", "**Design**: two queues")[0] == 0
    code, _, _ = run(capsys, "--db", db, "note", third, "--text", "later")
    assert code == 0
    assert run(capsys, "--db", db, "mark-read", first)[0] == 0
    shown = json.loads(run(capsys, "--db", db, "show", first, "--json")[1])
    assert shown["saved"] is True and shown["read"] is True and shown["note"] == "**Design**: two queues"
    saved = json.loads(run(capsys, "--db", db, "reading-list", "--json")[1])
    assert [a["id"] for a in saved] == [first, second] or [a["id"] for a in saved] == [second, first]
    assert all(a["saved_at"].endswith("Z") for a in saved)
    assert set(saved[0]) >= {"id", "url", "title", "source", "published", "angles", "saved", "read", "note"}

    assert run(capsys, "--db", db, "unsave", second)[0] == 0
    assert run(capsys, "--db", db, "mark-unread", first)[0] == 0
    assert run(capsys, "--db", db, "note", first, "--clear")[0] == 0
    shown = json.loads(run(capsys, "--db", db, "show", first, "--json")[1])
    assert (shown["saved"], shown["read"], shown["note"]) == (True, False, None)
    assert [a["id"] for a in json.loads(run(capsys, "--db", db, "reading-list", "--json")[1])] == [first]
    search = json.loads(run(capsys, "--db", db, "search", "remote caching", "--json")[1])
    assert all({"saved", "read", "note"} <= set(hit) for hit in search)
    assert [a["id"] for a in json.loads(run(capsys, "--db", db, "list", "--saved", "--json")[1])] == [first]
    unread = json.loads(run(capsys, "--db", db, "list", "--unread", "--json", "--limit", "50")[1])
    assert first in {a["id"] for a in unread} and len(unread) == 6


def test_newest_saved_first_and_since(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = ids(capsys, db)[:2]
    run(capsys, "--db", db, "save", a)
    time.sleep(1.1)  # saved_at has one-second resolution
    run(capsys, "--db", db, "save", b)
    assert [x["id"] for x in json.loads(run(capsys, "--db", db, "reading-list", "--json")[1])] == [b, a]
    future = json.loads(run(capsys, "--db", db, "reading-list", "--json", "--since", "2999-01-01")[1])
    assert future == []


def test_state_survives_refetch_update_and_reindex(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = ids(capsys, db)[0]
    run(capsys, "--db", db, "save", uid, "--note", "keep me")
    changed = tmp_path / "acme.xml"
    changed.write_bytes(rss(6).replace(b"We rebuilt the broker", b"We rewrote the broker"))
    assert run(capsys, "--db", db, "import", str(changed))[0] == 0
    assert run(capsys, "--db", db, "reindex")[0] == 0
    shown = json.loads(run(capsys, "--db", db, "show", uid, "--json")[1])
    assert shown["saved"] and shown["note"] == "keep me"


def test_unknown_ids_and_huge_notes_are_refused_whole(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = ids(capsys, db)[0]
    code, _, err = run(capsys, "--db", db, "save", uid, "no-such-id")
    assert code == 1 and "no such article: no-such-id" in err
    assert json.loads(run(capsys, "--db", db, "reading-list", "--json")[1]) == []  # nothing half-done
    big = tmp_path / "big.md"
    big.write_text("x" * (MAX_NOTE_BYTES + 1), encoding="utf-8")
    code, _, err = run(capsys, "--db", db, "note", uid, "--file", str(big))
    assert code == 1 and "notes are limited to 100 KB" in err and "Nothing was saved" in err
    run(capsys, "--db", db, "note", uid, "--text", "small")
    run(capsys, "--db", db, "save", uid, "--note-file", str(big))
    assert json.loads(run(capsys, "--db", db, "show", uid, "--json")[1])["note"] == "small"  # not cut, kept


# -- Markdown, both ways ----------------------------------------------------------------------------
def test_the_seed_list_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not SEED.is_file():
        pytest.skip("seed reading list not found")
    seed = SEED.read_text(encoding="utf-8")
    db = str(tmp_path / "seed.db")
    code, out, _ = run(capsys, "--db", db, "reading-list", "import", str(SEED))
    assert code == 0 and "saved 12 entries" in out
    exported = tmp_path / "out.md"
    assert run(capsys, "--db", db, "reading-list", "export", "-o", str(exported))[0] == 0
    text = exported.read_text(encoding="utf-8")
    original, again = parse(seed), parse(text)
    assert again.entries == original.entries  # all 12, in order, with both notes verbatim
    assert len(again.entries) == 12 and sum(1 for e in again.entries if e.note) == 2
    assert again.title == "Engineering blogs list"

    def body(markdown: str) -> list[str]:
        return [line for line in markdown.split("---", 2)[2].splitlines() if line.strip()]

    assert body(text) == body(seed)  # the bullets and notes, byte for byte
    # the same file twice changes nothing
    before = json.loads(run(capsys, "--db", db, "reading-list", "--json")[1])
    code, out, _ = run(capsys, "--db", db, "reading-list", "import", str(SEED))
    assert "12 matched stored articles, 0 added" in out
    assert json.loads(run(capsys, "--db", db, "reading-list", "--json")[1]) == before
    # import -> export -> import into a fresh store: the same entries and notes
    fresh = str(tmp_path / "fresh.db")
    run(capsys, "--db", fresh, "reading-list", "import", str(exported))
    _, second, _ = run(capsys, "--db", fresh, "reading-list", "export")
    assert parse(second).entries == original.entries


def test_import_matches_stored_articles_by_canonical_url(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = json.loads(run(capsys, "--db", db, "list", "--json")[1])[0]
    variant = stored["url"].replace("https://", "http://www.") + "?utm_source=newsletter&fbclid=x"
    path = tmp_path / "list.md"
    path.write_text(f"- [My own title]({variant})\n\tmy note\n- [Elsewhere](https://other.example/post)\n")
    code, out, _ = run(capsys, "--db", db, "reading-list", "import", str(path))
    assert code == 0 and "1 matched stored articles, 1 added as links" in out
    saved = json.loads(run(capsys, "--db", db, "reading-list", "--json")[1])
    by_id = {a["id"]: a for a in saved}
    assert by_id[stored["id"]]["note"] == "my note"
    link_only = next(a for a in saved if a["id"] != stored["id"])
    assert link_only["source"] == "Reading list" and link_only["title"] == "Elsewhere"


HARD_LIST = (
    "---\r\ntitle: 'Reader''s list'\r\ndate: 2025-01-02T03:04:05Z\r\n---\r\n\r\n"
    "* [A title with \\] and [brackets] and \\\\ backslash](https://e.example/a)\r\n"
    "    1. **Bold** label\r\n"
    "       - nested `code` with ) and ]\r\n"
    "\r\n"
    "    Paragraph after a blank line.\r\n"
    "+ [Parens in URL](<https://e.example/wiki/Foo_(bar) baz>)\r\n"
    "- [Balanced](https://e.example/wiki/Foo_(bar))\r\n"
    "\t- tab-indented note line\r\n"
    "* plain bullet without a link\r\n"
    "* [No URL]()\r\n"
    "Some prose that ends the list.\r\n"
    "    indented prose, not a note\r\n"
)


def test_hard_lists_parse_and_round_trip() -> None:
    parsed = parse(HARD_LIST)
    assert parsed.title == "Reader's list" and parsed.date == "2025-01-02T03:04:05Z"
    titles = [e.title for e in parsed.entries]
    assert titles[0] == "A title with ] and [brackets] and \\ backslash"
    assert [e.url for e in parsed.entries] == [
        "https://e.example/a",
        "https://e.example/wiki/Foo_(bar) baz",
        "https://e.example/wiki/Foo_(bar)",
    ]
    assert parsed.entries[0].note == (
        "1. **Bold** label\n   - nested `code` with ) and ]\n\nParagraph after a blank line."
    )
    assert parsed.entries[2].note == "- tab-indented note line"
    assert len(parsed.skipped) == 2
    again = parse(render(parsed.entries, title=parsed.title))
    assert again.entries == parsed.entries and again.title == parsed.title


def test_render_escapes_so_that_markdown_still_parses() -> None:
    text = render([Entry("Odd ] title [x]", "https://e.example/a_(b)", "note\n\n  indented")])
    assert "* [Odd \\] title \\[x\\]](<https://e.example/a_(b)>)" in text
    assert text.startswith('---\ntitle: "Reading list"\ndate: ')
    assert "draft: false" in text and 'tags: ["reading-list"]' in text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40),
            st.from_regex(r"https://e\.example/[a-z()_ ]{0,20}", fullmatch=True),
            st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_list_round_trips(items: list[tuple[str, str, str | None]]) -> None:
    def normal_note(note: str | None) -> str | None:
        if note is None:
            return None
        lines = [line.rstrip() if line.strip() else "" for line in note.replace("\r", "\n").splitlines()]
        return "\n".join(lines).strip("\n") or None

    entries = [Entry(t.strip(), u.strip(), normal_note(n)) for t, u, n in items if t.strip()]
    if not entries:
        return
    parsed = parse(render(entries))
    assert parsed.entries == entries


def test_not_a_list_is_a_clear_error() -> None:
    with pytest.raises(EngfeedError, match="no reading-list entries found"):
        parse("# Just a heading\n\nSome text.\n")


def test_note_limit_is_exact() -> None:
    from engfeed.readinglist import check_note

    assert check_note("x" * MAX_NOTE_BYTES)
    with pytest.raises(NoteTooLarge):
        check_note("x" * (MAX_NOTE_BYTES + 1))


# -- crash safety -----------------------------------------------------------------------------------
def test_kill_9_during_an_import_leaves_the_old_or_the_new_state(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    store = Store(db)
    store.close()
    big = tmp_path / "big.md"
    big.write_text(
        "".join(f"* [Post {i}](https://e.example/{i})\n    note {i}\n" for i in range(40_000)),
        encoding="utf-8",
    )
    env = {**os.environ, "ENGFEED_EMBED": "0", "PYTHONPATH": str(ROOT / "src")}
    outcomes = set()
    for delay in (0.5, 1.5, 3.0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "engfeed", "--db", str(db), "reading-list", "import", str(big)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            saved = conn.execute("SELECT count(*) FROM reading_state WHERE saved = 1").fetchone()[0]
            notes = conn.execute("SELECT count(*) FROM reading_state WHERE note IS NOT NULL").fetchone()[0]
        conn.close()
        assert saved in (0, 40_000) and notes == saved
        outcomes.add(saved)
    assert 0 in outcomes or 40_000 in outcomes


# -- the JSON API -----------------------------------------------------------------------------------
def test_api_state_changes(db: str) -> None:
    feed = Feed.open(db, embed=False)
    # One portal thread for the whole test, as one event loop serves every request in uvicorn.
    with TestClient(create_app(feed, refresh_interval_min=0, allowed_hosts=["testserver"])) as client:
        _check_api_state(client)
    feed.close()


def _check_api_state(client: TestClient) -> None:
    uid = client.get("/api/articles").json()["articles"][0]["id"]
    r = client.post(f"/api/articles/{uid}/save", json={"note": "from the API"})
    assert r.status_code == 200 and r.json()["saved"] is True and r.json()["note"] == "from the API"
    assert client.put(f"/api/articles/{uid}/note", json={"note": "edited"}).json()["note"] == "edited"
    assert client.post(f"/api/articles/{uid}/read").json()["read"] is True
    assert client.delete(f"/api/articles/{uid}/read").json()["read"] is False
    item = client.get(f"/api/articles/{uid}").json()
    assert (item["saved"], item["read"], item["note"]) == (True, False, "edited")
    listed = next(a for a in client.get("/api/articles").json()["articles"] if a["id"] == uid)
    assert listed["saved"] is True
    assert client.delete(f"/api/articles/{uid}/save").json()["saved"] is False
    assert client.put(f"/api/articles/{uid}/note", json={"note": None}).json()["note"] is None
    # refusals
    assert client.post("/api/articles/nope/save").status_code == 404
    big = client.put(f"/api/articles/{uid}/note", json={"note": "x" * (MAX_NOTE_BYTES + 1)})
    assert big.status_code == 413 and "100 KB" in big.json()["error"]["message"]
    assert client.get(f"/api/articles/{uid}").json()["note"] is None
    form = client.put(f"/api/articles/{uid}/note", content=b"note=x", headers={"content-type": "text/plain"})
    assert form.status_code == 415
    cross = client.post(f"/api/articles/{uid}/save", headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    assert client.post(f"/api/articles/{uid}/bogus").status_code in (404, 405)
    assert client.get(f"/api/articles/{uid}/save").status_code == 405
    paths = client.get("/openapi.json").json()["paths"]
    assert {"post", "delete"} <= set(paths["/api/articles/{uid}/save"])
    assert "put" in paths["/api/articles/{uid}/note"]
    assert {"post", "delete"} <= set(paths["/api/articles/{uid}/read"])
    for response in ("413", "415"):
        assert response in paths["/api/articles/{uid}/note"]["put"]["responses"]


def test_api_notes_are_never_lost_by_accident(db: str) -> None:
    """A PUT without "note" (a typo, an empty body) clears nothing; text no database can hold
    (a lone surrogate) is a 400 that changes nothing, not even the save it came with; a note
    of whitespace is no note, as on the page."""
    feed = Feed.open(db, embed=False)
    with TestClient(create_app(feed, refresh_interval_min=0, allowed_hosts=["testserver"])) as client:
        uid, other = [a["id"] for a in client.get("/api/articles").json()["articles"][:2]]
        client.put(f"/api/articles/{uid}/note", json={"note": "precious"})
        typo = client.put(f"/api/articles/{uid}/note", json={"text": "typo key"})
        assert typo.status_code == 400 and typo.json()["error"]["param"] == "note"
        empty = client.put(f"/api/articles/{uid}/note", content=b"", headers={"content-type": "text/plain"})
        assert empty.status_code == 400
        assert client.get(f"/api/articles/{uid}").json()["note"] == "precious"
        raw = b'{"note": "ok\\ud800"}'
        bad = client.put(
            f"/api/articles/{uid}/note", content=raw, headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and "surrogate" in bad.json()["error"]["message"]
        bad = client.post(
            f"/api/articles/{other}/save", content=raw, headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400
        assert client.get(f"/api/articles/{other}").json()["saved"] is False  # nothing half-done
        assert client.get(f"/api/articles/{uid}").json()["note"] == "precious"
        assert client.put(f"/api/articles/{uid}/note", json={"note": " \n "}).json()["note"] is None

        def read_only(*_a: object, **_k: object) -> None:
            raise StoreError("cannot write to store x: attempt to write a readonly database")

        feed.mark_read = read_only  # type: ignore[method-assign]
        r = client.post(f"/api/articles/{uid}/read")
        assert r.status_code == 503 and "readonly" in r.json()["error"]["message"]  # not "no such id"
    feed.close()
