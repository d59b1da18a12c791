"""The real-world corpus in ../shared: every file imports, and nothing is lost or doubled.

The article text belongs to its publishers, so it is read in place and never copied here.
"""

from __future__ import annotations

import calendar
import os
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest

from engfeed.feed import Feed
from engfeed.store import Store
from engfeed.urls import article_uid, canonical_url, dedup_key

pytestmark = pytest.mark.slow


def feed_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix in {".xml", ".json", ".rdf", ".atom"}
    )


def expected_entries(files: list[Path]) -> dict[str, tuple[str, float | None]]:
    """Distinct articles by feedparser's own reading (entries minus same-URL duplicates):
    key -> (normalised title, publish time or None)."""
    out: dict[str, tuple[str, float | None]] = {}
    for path in files:
        parsed = feedparser.parse(path.read_bytes())
        base = parsed.feed.get("link", "")
        for entry in parsed.entries:
            link = entry.get("link") or ""
            if link:
                key = dedup_key(canonical_url(link, base))
            else:
                key = "guid:" + (entry.get("id") or entry.get("title") or "")
            when = entry.get("published_parsed") or entry.get("updated_parsed")
            title = " ".join((entry.get("title") or "").casefold().split())
            out.setdefault(key, (title, calendar.timegm(when) if when else None))
    return out


def assert_whole(feed: Feed, files: list[Path]) -> int:
    """Every distinct entry is stored, or stored as the mirror of one with the same title
    published within the hour (a staging host, a re-slugged post); returns the mirror count."""
    expected = expected_entries(files)
    stored = {str(r[0]) for r in feed.store.conn.execute("SELECT uid FROM articles")}
    missing = {k: v for k, v in expected.items() if article_uid(k) not in stored}
    for key, (title, when) in missing.items():
        assert when is not None and title, key
        kept = feed.store.article(article_uid(key))  # a mirror's id finds the post kept
        assert kept is not None and " ".join(kept.title.casefold().split()) == title, key
        rows = feed.store.conn.execute(
            "SELECT title FROM articles WHERE published BETWEEN ? AND ? AND date_estimated = 0",
            (when - 3600, when + 3600),
        ).fetchall()
        assert title in {" ".join(r[0].casefold().split()) for r in rows}, (key, title)
    assert feed.count() == len(expected) - len(missing)
    return len(missing)


def test_large_corpus_imports_whole_and_deduplicated(shared_dir: Path, tmp_path: Path) -> None:
    files = feed_files(shared_dir / "feeds-large")
    assert len(files) >= 70
    feed = Feed(Store(tmp_path / "large.db"), embedder=None)
    report = feed.import_paths(files)
    assert not report.failed, [(r.name, r.error) for r in report.failed]
    mirrors = assert_whole(feed, files)
    assert 100 <= mirrors <= 200  # Cloudflare's staging-host copies, re-slugged re-posts
    assert feed.count() > 7900
    # Reading it again changes nothing: the store is idempotent.
    count = feed.count()
    again = feed.import_paths(files)
    assert again.total("new") == 0 and feed.count() == count
    newest = feed.articles(limit=20).articles
    assert [a.published for a in newest] == sorted((a.published for a in newest), reverse=True)
    assert all(a.title and a.url.startswith("http") for a in newest)


def test_snapshot_feeds_all_import(shared_dir: Path, tmp_path: Path) -> None:
    files = feed_files(shared_dir / "feeds")
    feed = Feed(Store(tmp_path / "feeds.db"), embedder=None)
    report = feed.import_paths(files)
    # The browser-saved Cloudflare copy is not well-formed XML; it must still yield articles.
    assert not report.failed, [(r.name, r.error) for r in report.failed]
    assert_whole(feed, files)
    names = {name for name, _ in feed.source_counts()}
    assert not any(n.lower().startswith(("engineering at", "the ")) for n in names), names
    for article in feed.articles(limit=1000).articles:
        assert "appeared first on" not in article.excerpt
        assert len(article.excerpt) <= 310


def test_feedparser_suite_imports_in_one_call_without_tracebacks(shared_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ENGFEED_EMBED": "0"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "engfeed",
            "--db",
            str(tmp_path / "fp.db"),
            "import",
            str(shared_dir / "feedparser-tests"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=540,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for line in result.stderr.splitlines():  # one line per bad file, naming it
        assert line.startswith("engfeed: ") and "feedparser-tests" in line, line
    assert "files:" in result.stdout
