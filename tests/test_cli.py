"""The CLI contract (public API): exit codes, JSON shapes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engfeed.cli import main
from feedgen import rss
from httpserver import LocalHTTPServer, Response
from pgserver import NewStore, store_argv

LIST_FIELDS = {"id", "url", "title", "source", "published", "excerpt", "angles"}


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI plumbing tests run BM25-only; search tests cover the embedding path."""
    monkeypatch.setenv("ENGFEED_EMBED", "0")
    monkeypatch.delenv("ENGFEED_DB", raising=False)
    monkeypatch.delenv("ENGFEED_DATABASE_URL", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_feed(folder: Path, name: str, n: int, **kw: object) -> Path:
    path = folder / name
    path.write_bytes(rss(n, **kw))  # type: ignore[arg-type]
    return path


def test_import_then_list_json(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = store_argv(new_store("s"))
    feed = write_feed(tmp_path, "acme.xml", 5)
    code, out, err = run(capsys, *db, "import", str(feed))
    assert code == 0, err
    code, out, _ = run(capsys, *db, "list", "--json", "--limit", "3")
    data = json.loads(out)
    assert code == 0 and len(data) == 3
    for item in data:
        assert set(item) >= LIST_FIELDS
        assert item["published"].endswith("Z") and isinstance(item["angles"], list)
        assert item["source"] == "Acme"
    assert [d["published"] for d in data] == sorted((d["published"] for d in data), reverse=True)


def test_import_bad_files_names_each_and_still_exits_zero(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_feed(tmp_path, "good.xml", 2)
    bad = tmp_path / "junk.xml"
    bad.write_bytes(b"\x00\x01 this is not a feed")
    missing = tmp_path / "missing.xml"
    code, _, err = run(capsys, *store_argv(new_store("s")), "import", str(good), str(bad), str(missing))
    assert code == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(str(bad) in line for line in lines)
    assert any(str(missing) in line for line in lines)
    assert "Traceback" not in err


def test_import_nothing_readable_exits_nonzero(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "junk.xml"
    bad.write_bytes(b"<html><body>not a feed</body></html>")
    code, _, err = run(capsys, *store_argv(new_store("s")), "import", str(bad))
    assert code != 0 and str(bad) in err and "Traceback" not in err


def test_import_source_name_override_and_folder(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "feeds"
    folder.mkdir()
    write_feed(folder, "a.xml", 2, site="https://a.example")
    write_feed(folder, "b.xml", 3, site="https://b.example", start=datetime(2026, 9, 1, tzinfo=UTC))
    # Same posts at the same times as a.xml: under one source name these are mirrors.
    write_feed(folder, "c.xml", 2, site="https://mirror.a.example")
    db = store_argv(new_store("s"))
    assert run(capsys, *db, "import", str(folder), "--source", "Mine")[0] == 0
    _, out, _ = run(capsys, *db, "list", "--json", "--source", "Mine", "--limit", "100")
    assert len(json.loads(out)) == 5
    assert not [a for a in json.loads(out) if "mirror" in a["url"]]


def test_env_var_selects_store(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    location = new_store("env")
    name = "ENGFEED_DATABASE_URL" if location.startswith("postgresql://") else "ENGFEED_DB"
    monkeypatch.setenv(name, location)
    assert run(capsys, "import", str(write_feed(tmp_path, "a.xml", 1)))[0] == 0
    from engfeed.store import Store

    store = Store(location)
    assert store.count_articles() == 1
    store.close_all()


def test_sources_add_refresh_and_failures(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], http_server: LocalHTTPServer
) -> None:
    db = store_argv(new_store("s"))
    good = http_server.route(
        "/feed.xml", Response(body=rss(4), headers={"Content-Type": "application/rss+xml"})
    )
    broken = http_server.route("/broken.xml", Response(status=500))
    other = http_server.route("/other.xml", Response(body=rss(2, site="https://other.example", prefix="o")))
    assert run(capsys, *db, "sources", "add", good)[0] == 0
    assert run(capsys, *db, "sources", "add", broken, "--name", "Broken")[0] == 0
    assert run(capsys, *db, "sources", "add", other, "--name", "Other")[0] == 0
    code, out, _ = run(capsys, *db, "sources", "list", "--json")
    names = [s["name"] for s in json.loads(out)]
    assert code == 0 and names == ["Acme", "Broken", "Other"]

    code, out, err = run(capsys, *db, "refresh", "--source", "Acme", "--source", "Broken")
    assert code == 0
    assert "Broken" in err and "500" in err and "Traceback" not in err
    assert "Broken" in out and "failed" in out  # the summary table names it too
    _, out, _ = run(capsys, *db, "list", "--json", "--limit", "100")
    assert {a["source"] for a in json.loads(out)} == {"Acme"}  # Other was not asked for

    code, out, _ = run(capsys, *db, "refresh", "--json")
    assert code == 0 and {r["source"] for r in json.loads(out)} == {"Acme", "Broken", "Other"}
    _, out, _ = run(capsys, *db, "sources", "list", "--json")
    health = {s["name"]: s for s in json.loads(out)}
    assert health["Broken"]["failures"] == 2 and health["Broken"]["http_status"] == 500
    assert health["Acme"]["last_success"] and health["Acme"]["error"] is None


def test_sources_add_discovers_feed_from_html_page(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], http_server: LocalHTTPServer
) -> None:
    http_server.route(
        "/blog/feed.xml", Response(body=rss(1), headers={"Content-Type": "application/rss+xml"})
    )
    page = (
        b'<html><head><link rel="alternate" type="application/rss+xml" href="/blog/feed.xml"></head></html>'
    )
    site = http_server.route("/blog/", Response(body=page, headers={"Content-Type": "text/html"}))
    code, out, err = run(capsys, *store_argv(new_store("s")), "sources", "add", site, "--json")
    assert code == 0, err
    assert json.loads(out)["url"] == http_server.url("/blog/feed.xml")


def test_sources_opml_import_export_remove(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = store_argv(new_store("s"))
    assert run(capsys, *db, "sources", "defaults")[0] == 0
    out_file = tmp_path / "out.opml"
    assert run(capsys, *db, "sources", "export", "-o", str(out_file))[0] == 0
    other = store_argv(new_store("t"))
    code, out, _ = run(capsys, *other, "sources", "import", str(out_file))
    assert code == 0 and "added" in out
    _, out, _ = run(capsys, *other, "sources", "list", "--json")
    names = {s["name"] for s in json.loads(out)}
    assert {"Meta", "Slack", "Netflix"} <= names
    assert run(capsys, *other, "sources", "remove", "Meta")[0] == 0
    code, _, err = run(capsys, *other, "sources", "remove", "Meta")
    assert code == 1 and "no such source" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["sources", "add", "ftp://example.com/feed"],
        ["sources", "add", "not a url"],
        ["sources", "import", "/nonexistent/file.opml"],
        ["refresh", "--source", "Nobody"],
        ["show", "nope"],
        ["related", "nope"],
    ],
)
def test_bad_input_is_one_line_error(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, *store_argv(new_store("s")), *argv)
    assert code == 1
    assert err.startswith("engfeed: error:") and len(err.strip().splitlines()) == 1


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--db", str(tmp_path / "s.db"), "list", "--limit", "-3"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["--db", str(tmp_path / "s.db"), "list", "--since", "yesterday-ish"])


def test_python_m_and_console_script_agree(tmp_path: Path) -> None:
    env = {**os.environ, "ENGFEED_EMBED": "0", "ENGFEED_DB": str(tmp_path / "s.db")}
    result = subprocess.run(
        [sys.executable, "-m", "engfeed", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0 and json.loads(result.stdout) == []
    junk = tmp_path / "junk.json"
    junk.write_text('{"version": "not a feed"')
    result = subprocess.run(
        [sys.executable, "-m", "engfeed", "import", str(junk)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr and str(junk) in result.stderr


def test_a_database_outage_exits_75_with_one_line(
    new_store: NewStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EX_TEMPFAIL: a script or a systemd unit can tell "try again" from "fix your input"."""
    from engfeed.errors import DatabaseUnavailable
    from engfeed.store.base import Store

    def away(*args: object, **kwargs: object) -> object:
        raise DatabaseUnavailable("the database did not answer: connection refused")

    monkeypatch.setattr(Store, "list_articles", away)
    code, out, err = run(capsys, *store_argv(new_store("s")), "list", "--json")
    assert code == 75 and out == ""
    assert err.strip().splitlines() == [
        "engfeed: unavailable: the database did not answer: connection refused; try again shortly"
    ]
