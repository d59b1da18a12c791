"""Store: migrations, upserts, dedup, keyset listing, FTS sync, transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engfeed.errors import EngfeedError
from engfeed.models import AngleMatch, Article, ArticleFilter
from engfeed.store import FetchOutcome, Store
from pgserver import store_location

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def art(uid: str, title: str, days: int = 0, source: str = "Acme", **kw: object) -> Article:
    return Article(
        uid=uid,
        url=f"https://acme.example/{uid}",
        title=title,
        published=T0 + timedelta(days=days),
        source=source,
        excerpt=kw.pop("excerpt", f"excerpt of {title}"),  # type: ignore[arg-type]
        text=kw.pop("text", f"body of {title}"),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(request: pytest.FixtureRequest, backend: str) -> Iterator[Store]:
    """A fresh store on each backend (the tests below run once per backend)."""
    found = Store(store_location(request, backend))
    yield found
    found.close()


def write(store: Store, articles: list[Article], source_id: int | None = None) -> None:
    with store.transaction() as tx:
        store.upsert_articles(articles, source_id=source_id, conn=tx)


def test_migrations_are_numbered_and_idempotent(tmp_path: Path) -> None:
    first = Store(tmp_path / "m.db")
    version = first.migrate()
    assert version >= 2
    again = Store(tmp_path / "m.db")
    assert again.migrate() == version
    mode = again.conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_upsert_new_updated_unchanged(store: Store) -> None:
    with store.transaction() as tx:
        first = store.upsert_articles([art("a", "One"), art("b", "Two")], source_id=None, conn=tx)
    assert len(first.new) == 2 and not first.updated
    with store.transaction() as tx:
        second = store.upsert_articles([art("a", "One (edited)"), art("b", "Two")], source_id=None, conn=tx)
    assert not second.new and len(second.updated) == 1 and second.unchanged == 1
    found = store.article("a")
    assert found is not None and found.title == "One (edited)"
    assert store.count_articles() == 2


def test_update_keeps_first_real_date(store: Store) -> None:
    write(store, [art("a", "One", days=3)])
    write(store, [art("a", "One again", days=40)])
    found = store.article("a")
    assert found is not None and found.published == T0 + timedelta(days=3)


def test_estimated_date_replaced_by_real_one(store: Store) -> None:
    write(store, [art("a", "One", days=50, date_estimated=True)])
    write(store, [art("a", "One!", days=2)])
    found = store.article("a")
    assert found is not None and found.published == T0 + timedelta(days=2) and not found.date_estimated


def test_listing_is_newest_first_with_keyset_pages(store: Store) -> None:
    write(store, [art(f"x{i}", f"Post {i}", days=i % 7) for i in range(20)])
    seen: list[str] = []
    before = None
    while True:
        page = store.list_articles(limit=6, before=before)
        if not page:
            break
        seen += [a.uid for a in page]
        last = page[-1]
        assert last.id is not None
        before = (int(last.published.timestamp()), last.id)
    assert len(seen) == len(set(seen)) == 20
    dates = [store.article(u).published for u in seen]  # type: ignore[union-attr]
    assert dates == sorted(dates, reverse=True)


def test_filters(store: Store) -> None:
    write(store, [art("a", "A", days=1, source="Meta"), art("b", "B", days=5, source="Slack")])
    assert [a.uid for a in store.list_articles(ArticleFilter(sources=("meta",)))] == ["a"]
    assert [a.uid for a in store.list_articles(ArticleFilter(since=T0 + timedelta(days=3)))] == ["b"]
    assert [a.uid for a in store.list_articles(ArticleFilter(until=T0 + timedelta(days=3)))] == ["a"]
    assert store.count_articles(ArticleFilter(sources=("Nobody",))) == 0


def test_fts_index_follows_inserts_updates_and_deletes(store: Store) -> None:
    write(store, [art("a", "Tail latency at scale", text="p99 matters")])
    assert [i for i, _ in store.fts_search('"latency"', ArticleFilter(), limit=5)]
    write(store, [art("a", "Throughput at scale", text="p99 matters")])
    assert not store.fts_search('"latency"', ArticleFilter(), limit=5)
    assert store.fts_search('"throughput"', ArticleFilter(), limit=5)
    with store.transaction() as tx:
        tx.execute("DELETE FROM articles")
    assert not store.fts_search('"throughput"', ArticleFilter(), limit=5)


def test_fts_window_scores_only_the_newest_matches(store: Store) -> None:
    # Stored oldest first, so rowid order is storage order; lengths differ, so BM25 does too.
    write(store, [art(f"w{i}", f"Post {i}", days=i, text="alpha " + "filler " * i) for i in range(40)])
    write(store, [art("other", "Unrelated", text="beta")])
    full = store.fts_search('"alpha"', ArticleFilter(), limit=40)
    assert len(full) == 40
    # At least as many matches as the window: the exact answer.
    assert store.fts_search('"alpha"', ArticleFilter(), limit=40, window=40) == full
    assert store.fts_search('"alpha"', ArticleFilter(), limit=5, window=100) == full[:5]
    # More: the best of the newest `window` matches, best first.
    newest = {store.article(f"w{i}").id for i in range(30, 40)}  # type: ignore[union-attr]
    got = store.fts_search('"alpha"', ArticleFilter(), limit=5, window=10)
    assert len(got) == 5 and {i for i, _ in got} <= newest
    assert got == sorted([h for h in full if h[0] in newest], key=lambda h: -h[1])[:5]
    # A filter is applied before the window could drop anything.
    flt = ArticleFilter(since=T0 + timedelta(days=5))
    assert store.fts_search('"alpha"', flt, limit=40, window=3) == store.fts_search('"alpha"', flt, limit=40)
    # ... and before ranking: the best filtered matches, however low they rank unfiltered.
    late = {a.id for a in store.list_articles(flt, limit=100)}
    assert store.fts_search('"alpha"', flt, limit=4) == [h for h in full if h[0] in late][:4]


def test_mirrors_of_a_post_are_stored_once(store: Store) -> None:
    post = art("cf-1", "ML Ops Platform at Cloudflare", days=3, source="Cloudflare")
    mirror = replace(post, uid="cf-1-staging", url="https://staging.blog.example.org/mlops")
    write(store, [post, mirror])
    assert [a.uid for a in store.list_articles()] == ["cf-1"]
    kept = store.article("cf-1-staging")  # the mirror's id finds the post that was kept
    assert kept is not None and kept.uid == "cf-1"
    # ... also when the mirror turns up in a later refresh, in other case and spacing.
    with store.transaction() as tx:
        again = store.upsert_articles(
            [replace(mirror, uid="cf-1-b", title=" ml ops  platform AT cloudflare")], source_id=None, conn=tx
        )
    assert again.new == [] and again.unchanged == 1
    # ... and when it was re-posted minutes later.
    write(store, [replace(mirror, uid="cf-1-c", published=post.published + timedelta(minutes=4))])
    assert store.count_articles() == 1
    # Not mirrors: another source, hours apart, an estimated date, another title.
    others = [
        replace(post, uid="o1", source="Other"),
        replace(post, uid="o2", published=post.published + timedelta(hours=2)),
        replace(post, uid="o3", date_estimated=True),
        replace(post, uid="o4", title="ML Ops Platform at Cloudflare, part 2"),
    ]
    write(store, others)
    assert store.count_articles() == 5


def test_transaction_rolls_back_on_crash(store: Store) -> None:
    write(store, [art("a", "Kept")])
    with pytest.raises(RuntimeError), store.transaction() as tx:
        store.upsert_articles([art("b", "Half-written")], source_id=None, conn=tx)
        raise RuntimeError("crash mid-refresh")
    assert store.count_articles() == 1
    assert store.article("b") is None


def test_sources_add_remove_keeps_articles(store: Store) -> None:
    src = store.add_source("Acme", "https://acme.example/feed")
    with pytest.raises(EngfeedError, match="already exists"):
        store.add_source("acme", "https://other.example/feed")
    write(store, [art("a", "One")], source_id=src.id)
    assert store.sources()[0].article_count == 1
    store.remove_source("Acme")
    assert store.sources() == []
    assert store.count_articles() == 1
    with pytest.raises(EngfeedError, match="no such source"):
        store.remove_source("Acme")


def test_record_fetch_tracks_health_and_permanent_redirects(store: Store) -> None:
    src = store.add_source("Acme", "https://acme.example/feed")
    assert src.id is not None
    now = datetime.now(UTC).replace(microsecond=0)
    store.record_fetch(
        src.id, FetchOutcome(attempt=now, ok=False, http_status=503, error="HTTP 503", next_due=now)
    )
    store.record_fetch(
        src.id, FetchOutcome(attempt=now, ok=False, http_status=None, error="timed out", next_due=now)
    )
    failing = store.source("Acme")
    assert failing is not None and failing.failures == 2 and failing.error == "timed out"
    assert failing.last_success is None
    store.record_fetch(
        src.id, FetchOutcome(attempt=now, ok=True, http_status=200, error=None, next_due=now, etag='"v1"',
        new_url="https://acme.example/new-feed"))  # fmt: skip
    healed = store.source("Acme")
    assert healed is not None and healed.failures == 0 and healed.error is None
    assert healed.etag == '"v1"' and healed.last_success == now
    assert healed.url == "https://acme.example/new-feed"


def test_angles_roundtrip_and_filter(store: Store) -> None:
    write(store, [art("a", "A"), art("b", "B")])
    a = store.article("a")
    assert a is not None and a.id is not None
    store.angles.save([(a.id, [AngleMatch("systems performance", ("latency",), 0.8)])], "sig1")
    assert store.angles.needing("sig1") == [i for i in store.all_ids() if i != a.id]
    listed = store.list_articles(ArticleFilter(angle="systems performance"))
    assert [x.uid for x in listed] == ["a"]
    assert listed[0].angles[0].terms == ("latency",)
    assert store.angles.counts() == [("systems performance", 1)]


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises((EngfeedError, sqlite3.DatabaseError)):
        Store(bad)


def test_updated_article_is_relabelled(store: Store) -> None:
    write(store, [art("a", "A")])
    a = store.article("a")
    assert a is not None and a.id is not None
    store.angles.save([(a.id, [])], "sig1")
    assert store.angles.needing("sig1") == []
    write(store, [art("a", "A, edited")])
    assert store.angles.needing("sig1") == [a.id]


def test_a_malformed_full_text_expression_is_a_query_error(tmp_path: Path) -> None:
    # Search never sees an sqlite3 exception: the store speaks engfeed's error types.
    from engfeed.errors import QueryError

    store = Store(tmp_path / "q.db")
    with pytest.raises(QueryError, match="full-text query failed"):
        store.fts_search('"unbalanced AND', ArticleFilter(), limit=5)
    with pytest.raises(QueryError):
        store.fts_search_bounded("AND OR", ArticleFilter(), limit=5, max_steps=10**9)
    assert store.fts_search('"fine"', ArticleFilter(), limit=5) == []
    store.close()


def test_in_lists_are_chunked_with_parameters_on_both_sides() -> None:
    from engfeed.store.sql import IN_CHUNK, in_chunks, select_in

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, tag TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "a" if i % 2 else "b") for i in range(1, 1301)])
    ids = list(range(1, 1301))
    assert [len(chunk) for chunk, _ in in_chunks(ids)] == [IN_CHUNK, IN_CHUNK, 1300 - 2 * IN_CHUNK]
    assert all(marks.count("?") == len(chunk) for chunk, marks in in_chunks(ids))
    rows = list(
        select_in(
            conn, "SELECT id FROM t WHERE tag = ? AND id IN ({ids}) AND id > ?", ids, before=["a"], after=[10]
        )
    )
    assert sorted(r[0] for r in rows) == [i for i in ids if i % 2 and i > 10]
    assert list(select_in(conn, "SELECT id FROM t WHERE id IN ({ids})", [])) == []
    conn.close()


def test_migration_0011_turns_pending_marks_into_tokens(tmp_path: Path) -> None:
    # A store that was at version 10: marks were 1, and there was no token counter.
    store = Store(tmp_path / "old.db")
    with store.transaction() as tx:
        ids = store.upsert_articles([art("a", "One"), art("b", "Two")], source_id=None, conn=tx).new
    store.vectors.save_documents("m", [(ids[0], b"\x00" * 8, True), (ids[1], b"\x00" * 8, False)])
    with store.transaction() as tx:
        tx.execute("UPDATE embeddings SET passages_pending = 1 WHERE passages_pending != 0")
        tx.execute("DELETE FROM meta WHERE key = 'passages.token'")
        tx.execute("DROP INDEX embeddings_passages_pending")
        tx.execute("CREATE INDEX embeddings_passages_pending ON embeddings(model) WHERE passages_pending = 1")
        tx.execute("DELETE FROM schema_migrations WHERE version >= 11")
    store.close()
    store = Store(tmp_path / "old.db")
    assert store.vectors.pending("m") == {ids[0]: ids[0]}
    assert int(store.get_meta("passages.token") or 0) >= max(ids)
    store.vectors.save_documents("m", [(ids[1], b"\x00" * 8, True)])  # a new mark: a new, larger token
    assert store.vectors.pending("m")[ids[1]] > max(ids)
    store.close()
