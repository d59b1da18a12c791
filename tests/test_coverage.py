"""Searchable at once: while articles wait for their vectors, keyword search covers them and the
page (and the CLI) say how far concept search reaches, with an estimate while embedding runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_cli
from engfeed.feed import Feed, SearchCoverage
from engfeed.web.render import eta
from feedgen import rss
from test_web import client_for

ARTICLES = 70  # more than two embedding batches (SearchTuning.embed_batch = 32)


@pytest.fixture
def unembedded(tmp_path: Path) -> Path:
    """A store whose articles were imported with embeddings off: none has a vector yet."""
    db = tmp_path / "cov.db"
    (tmp_path / "acme.xml").write_bytes(rss(ARTICLES))
    feed = Feed.open(db, embed=False)
    try:
        report = feed.import_paths([tmp_path / "acme.xml"])
        assert report.total("new") == ARTICLES
    finally:
        feed.close()
    return db


def test_coverage_counts_and_the_estimate_while_embedding(unembedded: Path) -> None:
    feed = Feed.open(unembedded, embed=True)
    try:
        before = feed.search_coverage()
        assert (before.embedded, before.total, before.partial, before.eta_s) == (0, ARTICLES, True, None)
        # Keyword search already covers every article.
        assert feed.search("remote caching", limit=5)
        seen: list[SearchCoverage] = []

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "embed":
                seen.append(feed.search_coverage())

        feed.index_pending(progress)
        middle = [c for c in seen if 0 < c.embedded < ARTICLES]
        assert middle, seen
        assert all(c.eta_s is not None and c.eta_s >= 0 for c in middle)
        assert [c.embedded for c in seen] == sorted(c.embedded for c in seen)  # grows batch by batch
        after = feed.search_coverage()
        assert (after.embedded, after.total, after.partial, after.eta_s) == (ARTICLES, ARTICLES, False, None)
        assert after.to_json() == {
            "embedded": ARTICLES,
            "articles": ARTICLES,
            "eta_seconds": None,
            "enabled": True,
        }
    finally:
        feed.close()


def test_without_embeddings_there_is_nothing_to_wait_for(unembedded: Path) -> None:
    feed = Feed.open(unembedded, embed=False)
    try:
        coverage = feed.search_coverage()
        assert not coverage.enabled and not coverage.partial and coverage.total == ARTICLES
    finally:
        feed.close()


def test_the_page_says_how_far_concept_search_reaches(unembedded: Path) -> None:
    feed = Feed.open(unembedded, embed=True)
    try:
        with client_for(feed) as client:
            text = client.get("/").text
            note = re.search(r'id="coverage-note"[^>]*>(.*?)</p>', text, re.S)
            assert note is not None
            assert f"Concept search covers 0 of {ARTICLES} articles" in note.group(1)
            assert "the rest as they are indexed" in note.group(
                1
            ) and "Keyword search covers them all" in note.group(1)
            feed.index_pending()
            assert 'id="coverage-note"' not in client.get("/").text
    finally:
        feed.close()


def test_cli_search_notes_partial_coverage_on_stderr(
    unembedded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGFEED_EMBED", "1")
    code, out, err = run_cli(capsys, "--db", str(unembedded), "search", "remote caching", "--json")
    assert code == 0 and out.startswith("[")
    assert f"concept search covers 0 of {ARTICLES} articles so far" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(None, ""), (5, "under a minute"), (150, "~2 min"), (5399, "~90 min"), (7300, "~2 h")],
)
def test_eta_in_words(seconds: float | None, words: str) -> None:
    assert eta(seconds) == words
