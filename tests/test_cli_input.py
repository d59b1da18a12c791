"""The CLI on awkward input: every case ends in a one-line error or a clean result (never an
internal error, exit 70), and nothing is half-written or lost on the way."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engfeed.cli import main
from engfeed.errors import StoreError
from engfeed.feed import Feed
from engfeed.readinglist import NoteNotText, check_note
from feedgen import rss


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGFEED_EMBED", "0")
    monkeypatch.delenv("ENGFEED_DB", raising=False)
    monkeypatch.delenv("ENGFEED_DATABASE_URL", raising=False)


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """A store with 5 articles of the source "Acme"."""
    feed = tmp_path / "acme.xml"
    feed.write_bytes(rss(5))
    argv = ["--db", str(tmp_path / "store.db")]
    assert main([*argv, "import", str(feed)]) == 0
    capsys.readouterr()
    return argv


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def first_id(db: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    _, out, _ = run(capsys, *db, "list", "--json", "--limit", "1")
    return str(json.loads(out)[0]["id"])


def test_mute_remove_names_exactly_the_rule_given(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Rule numbers are never capped: a cap would remove another rule."""
    for term in ("webinar", "hiring"):
        assert run(capsys, *db, "mute", "add", "--term", term)[0] == 0
    import sqlite3

    with sqlite3.connect(db[1]) as conn:
        conn.execute("UPDATE mute_rules SET id = id + 10000")  # 10001 and 10002
    conn.close()
    code, out, err = run(capsys, *db, "mute", "remove", "10002")
    assert code == 0 and "10002" in out, err
    code, out, _ = run(capsys, *db, "mute", "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [10001]
    code, _, err = run(capsys, *db, "mute", "remove", "99999")
    assert code == 1 and "99999" in err
    with pytest.raises(SystemExit) as exit_:
        main([*db, "mute", "remove", "0"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("kind", ["--term", "--source", "--regex", "--angle"])
def test_an_empty_mute_rule_is_a_clear_error(
    db: list[str], capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    code, _, err = run(capsys, *db, "mute", "add", kind, "", "--preview")
    assert code == 1 and "internal error" not in err and err.count("\n") == 1, err


def test_undecodable_argument_bytes_are_read_as_replacement_characters(
    db: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Python hands undecodable argv bytes over as lone surrogates; no layer can store them."""
    uid = first_id(db, capsys)
    code, out, err = run(capsys, *db, "save", uid, "--note", "bad \udcff")
    assert code == 0 and "not valid UTF-8" in err
    code, out, _ = run(capsys, *db, "reading-list", "--json")
    [item] = json.loads(out)
    assert item["saved"] is True and item["note"] == "bad \ufffd"
    for argv in (["show", "x\udcff"], ["list", "--source", "\udcff"], ["note", uid, "--text", "\ud800"]):
        code, _, err = run(capsys, *db, *argv)
        assert code in (0, 1) and "internal error" not in err, (argv, err)


def test_a_note_that_is_not_text_is_refused_before_anything_changes(tmp_path: Path) -> None:
    with pytest.raises(NoteNotText, match="surrogate"):
        check_note("ok\ud800")
    feed = Feed.open(tmp_path / "s.db", embed=False)
    feed.import_paths([_feed_file(tmp_path)])
    uid = feed.articles(limit=1).articles[0].uid
    with pytest.raises(NoteNotText):
        feed.save([uid], note="ok\ud800")
    assert not feed.article(uid).saved  # type: ignore[union-attr]
    feed.save([uid], note="  \n")
    assert feed.article(uid).note is None  # type: ignore[union-attr]  # blank is no note
    feed.close()


def _feed_file(folder: Path) -> Path:
    path = folder / "acme.xml"
    path.write_bytes(rss(3))
    return path


def test_a_read_only_store_is_a_store_error_naming_it(tmp_path: Path) -> None:
    feed = Feed.open(tmp_path / "s.db", embed=False)
    feed.import_paths([_feed_file(tmp_path)])
    uid = feed.articles(limit=1).articles[0].uid
    feed.store.conn.execute("PRAGMA query_only = ON")  # what a read-only file answers (root ignores modes)
    with pytest.raises(StoreError, match="cannot write to store"):
        feed.mark_read([uid])
    feed.store.conn.execute("PRAGMA query_only = OFF")
    assert not feed.article(uid).read  # type: ignore[union-attr]
    feed.close()


def test_import_json_names_undecodable_file_names_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / os.fsdecode(b"\xff.xml")).write_bytes(b"<not a feed")
    code, out, err = run(capsys, "--db", str(tmp_path / "s.db"), "import", str(folder), "--json")
    data = json.loads(out.encode("utf-8"))  # strict UTF-8: it would fail on a raw byte
    assert code == 1 and "\ufffd" in json.dumps(data, ensure_ascii=False), err  # 1: nothing imported


def test_reading_list_options_before_the_action_count(
    db: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    uid = first_id(db, capsys)
    assert run(capsys, *db, "save", uid)[0] == 0
    code, out, _ = run(capsys, *db, "reading-list", "--since", "2030-01-01", "export", "--format", "json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(capsys, *db, "reading-list", "--json", "export")
    assert code == 0 and len(json.loads(out)) == 1
    code, out, _ = run(capsys, *db, "reading-list", "export", "--since", "2000-01-01")
    assert code == 0 and out.startswith("---\n")


def test_digest_output_options(db: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "digest.json"
    code, out, err = run(capsys, *db, "digest", "--json", "-o", str(target))
    assert code == 0 and out == "", err
    assert set(json.loads(target.read_text())) >= {"title", "week", "groups"}
    code, _, err = run(capsys, *db, "digest", "--send", "-o", str(tmp_path / "x.md"))
    assert code == 1 and "--send" in err
    assert not (tmp_path / "x.md").exists()


@pytest.mark.parametrize("port", ["99999", "-5", "http"])
def test_serve_refuses_ports_out_of_range(db: list[str], port: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*db, "serve", "--port", port])
    assert exit_.value.code == 2


def test_malformed_files_are_clean_errors(
    db: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    code, _, err = run(capsys, *db, "angles", "feedback-import", str(deep))
    assert code == 1 and "nested too deeply" in err
    escaped = tmp_path / "escaped.json"
    escaped.write_text(json.dumps({"feedback": [{"url": "\ud800", "angle": "x", "verdict": "yes"}]}))
    code, out, err = run(capsys, *db, "angles", "feedback-import", str(escaped), "--json")
    assert code == 0 and len(json.loads(out)["skipped"]) == 1, err
    listing = tmp_path / "list.md"
    listing.write_text(
        '---\ntitle: "bad \\ud800"\ndate: 9999-12-31T23:59:59-05:00\ntags: [eng, reads]\n---\n'
        "* [A post](https://example.org/a)\n"
    )
    code, out, err = run(capsys, *db, "reading-list", "import", str(listing), "--json")
    assert code == 0, err
    code, out, _ = run(capsys, *db, "reading-list", "export")
    assert 'tags: ["eng", "reads"]' in out and "bad \ufffd" in out
    profile = tmp_path / "profile.txt"
    profile.write_bytes(b"x" * (300 * 1024))
    code, _, err = run(capsys, *db, "angles", "suggest", "--from", str(profile))
    assert code == 1 and "over 256 KB" in err


def test_note_messages_say_what_happened(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    uid = first_id(db, capsys)
    assert "note saved" in run(capsys, *db, "note", uid, "--text", "kept")[1]
    assert "note cleared" in run(capsys, *db, "note", uid, "--text", "")[1]


def test_source_names_are_printed_safely(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    name = "\x1b[31mRED\u202e"
    code, _, err = run(
        capsys, *db, "sources", "add", "https://example.org/feed", "--name", name, "--no-discover"
    )
    assert code == 0, err
    code, out, _ = run(capsys, *db, "sources", "remove", "[31mRED")
    assert code == 0 and "\x1b" not in out and "\u202e" not in out
    code, _, err = run(
        capsys, *db, "sources", "add", "https://example.org/x", "--name", "  ", "--no-discover"
    )
    assert code == 1 and "empty" in err


def test_a_feed_url_over_the_cap_is_refused(db: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """PostgreSQL's unique index cannot hold a much longer one; the same rule on both backends."""
    url = "https://example.org/feed?k=" + "a" * 3000
    code, _, err = run(capsys, *db, "sources", "add", url, "--name", "Long", "--no-discover")
    assert code == 1 and "at most 2,048" in err
