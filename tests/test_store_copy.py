"""engfeed.store.copy: a whole store moved between backends and back, row for row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from engfeed.errors import EngfeedError, StoreError
from engfeed.models import AngleMatch, Article, ArticleFilter
from engfeed.rules import MuteRule
from engfeed.store import Store
from engfeed.store.copy import COPIED_TABLES, copy_store
from pgserver import BACKENDS, store_location

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PAIRS = [(a, b) for a in BACKENDS for b in BACKENDS]


def filled(location: str) -> Store:
    """A store with a row in every copied table."""
    store = Store(location)
    src = store.add_source("Acme", "https://acme.example/feed")
    arts = [
        Article(
            uid=f"u{i}",
            url=f"https://acme.example/{i}",
            title=f"Caching at scale {i}",
            published=T0 + timedelta(days=i),
            source="Acme",
            excerpt="excerpt",
            text="body text about caches",
        )
        for i in range(5)
    ]
    with store.transaction() as tx:
        ids = store.upsert_articles(arts, source_id=src.id, conn=tx).new
        tx.execute("INSERT INTO article_aliases(uid, article_id) VALUES ('alias', ?)", (ids[0],))
    vec = np.arange(4, dtype=np.float32).tobytes()
    store.vectors.save_documents("m", [(ids[0], vec, True), (ids[1], vec, False)])
    store.vectors.save_passages("m", [(ids[0], [("a passage", vec)])])
    store.angles.save([(ids[0], [AngleMatch("zeta", ("z",), 0.5), AngleMatch("alpha", ("a",), 0.9)])], "sig")
    store.reading.set_saved([ids[0]], True, when=T0)
    store.reading.set_note(ids[0], "a note", when=T0)
    store.reading.set_read([ids[1]], True, when=T0)
    store.summaries.save(ids[0], "h", "extractive", "{}", now=T0)
    store.mutes.add(MuteRule(kind="source", value="Other"), None, now=T0)
    store.digests.claim("2025-W01", "ann@example.com", now=T0)
    store.digests.set_subscribed("bob@example.com", False, now=T0)
    store.feedback.set(ids[0], "alpha", 1, now=T0)
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO article_pages(article_id, status, fetched) VALUES (?, 'failed', 1)", (ids[2],)
        )
        tx.execute("INSERT INTO robots(origin, fetched) VALUES ('https://acme.example', 1)")
    return store


def rows(store: Store) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for table, columns, order in COPIED_TABLES:
        found = store.conn.execute(f"SELECT {columns} FROM {table} ORDER BY {order}").fetchall()
        out[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in found]
    out["users"] = [r[:2] for r in out["users"]]  # creation time: when each store was made
    return out


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_a_copy_holds_every_row_and_works_as_a_store(
    request: pytest.FixtureRequest, source: str, target: str
) -> None:
    src = filled(store_location(request, source, "src"))
    dest = Store(store_location(request, target, "dest"))
    progress: list[tuple[str, int, int]] = []
    report = copy_store(src, dest, progress=lambda *a: progress.append(a))
    assert report.rows["articles"] == 5 and report.rows["article_angles"] == 2
    assert ("articles", 5, 5) in progress
    assert rows(dest) == rows(src)
    if target == "postgresql":  # the copied vectors are searchable at once (pgvector)
        assert ("vectors", 2, 2) in progress
        unsynced = dest.conn.execute("SELECT count(*) FROM article_vectors WHERE embedding IS NULL")
        assert unsynced.fetchone()[0] == 0
    # A working store: search, the angle order, the reader's state, and new ids after the copied ones.
    assert [a for a, _ in dest.fts_search('"caching"', ArticleFilter(), limit=10)]
    first = dest.article("u0")
    assert first is not None and [m.name for m in first.angles] == ["zeta", "alpha"]
    assert first.saved and first.note == "a note"
    added = dest.add_source("Beta", "https://beta.example/feed")
    assert added.id is not None and added.id > 1
    with dest.transaction() as tx:
        new = dest.upsert_articles(
            [Article(uid="n", url="https://beta.example/n", title="New", published=T0, source="Beta")],
            source_id=added.id,
            conn=tx,
        ).new
    assert new[0] > max(a.id or 0 for a in dest.list_articles(limit=10) if a.uid != "n")


def test_a_store_that_holds_articles_is_never_a_destination(request: pytest.FixtureRequest) -> None:
    backend = BACKENDS[-1]
    src = filled(store_location(request, backend, "a"))
    dest = filled(store_location(request, backend, "b"))
    with pytest.raises(StoreError, match="not empty"):
        copy_store(src, dest)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_with_the_readers_rules_is_never_a_destination(
    request: pytest.FixtureRequest, backend: str
) -> None:
    """A mute rule already there would silently win over the copied one of the same id."""
    src = filled(store_location(request, backend, "a"))
    dest = Store(store_location(request, backend, "b"))
    dest.mutes.add(MuteRule(kind="term", value="zzzz"), None, now=T0)
    with pytest.raises(StoreError, match=r"not empty \(mute_rules has rows\)"):
        copy_store(src, dest)
    assert [r.value for r in dest.mutes.rules()] == ["zzzz"]  # nothing copied


@pytest.mark.parametrize("backend", BACKENDS)
def test_source_names_that_differ_only_in_unicode_case_are_one_name(
    request: pytest.FixtureRequest, backend: str
) -> None:
    """As PostgreSQL's citext has it, on SQLite too (whose NOCASE folds ASCII only)."""
    store = Store(store_location(request, backend, "a"))
    store.add_source("Über", "https://a.example/feed")
    with pytest.raises(EngfeedError, match="already exists: Über"):
        store.add_source("über", "https://b.example/feed")


def test_a_copy_refuses_source_names_postgres_cannot_tell_apart(request: pytest.FixtureRequest) -> None:
    """An older SQLite store may hold both: refused before anything is written."""
    src = Store(store_location(request, "sqlite", "a"))
    src.add_source("Über", "https://a.example/feed")
    with src.transaction() as tx:  # as an engfeed before the check could store them
        tx.execute(
            "INSERT INTO sources(name, url, site_url, added) VALUES ('über', 'https://b.example/f', '', 0)"
        )
    dest = Store(store_location(request, BACKENDS[-1], "b"))
    with pytest.raises(StoreError, match="differ only in case"):
        copy_store(src, dest)
    assert dest.sources() == []
