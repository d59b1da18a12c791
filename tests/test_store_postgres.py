"""The PostgreSQL backend's own parts: SQL conversion, full-text safety, schema checks,
one writer at a time, change detection. (The shared store tests run on it too.)"""

from __future__ import annotations

import gc
import threading
import time
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engfeed.errors import DatabaseUnavailable, StoreError
from engfeed.models import Article, ArticleFilter
from engfeed.query import fts_match
from engfeed.store import PostgresStore, Store
from engfeed.store.postgres import psycopg_sql, redact_url, websearch_text
from pgserver import PgServer

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def pg(pg_server: PgServer) -> PostgresStore:
    store = Store(pg_server.fresh_database())
    assert isinstance(store, PostgresStore)
    return store


def test_parameters_become_psycopg_ones_outside_quotes_only() -> None:
    assert psycopg_sql("SELECT ? WHERE a LIKE 'x%?' AND b = ?") == "SELECT %s WHERE a LIKE 'x%%?' AND b = %s"
    assert psycopg_sql('SELECT "q?" FROM t WHERE c % 2 = ?') == 'SELECT "q?" FROM t WHERE c %% 2 = %s'


def test_urls_are_shown_without_their_password() -> None:
    assert redact_url("postgresql://ann:s3cret@db.example/feed") == "postgresql://ann:***@db.example/feed"
    assert redact_url("postgresql://ann@db.example/feed") == "postgresql://ann@db.example/feed"
    # passwords a URL parser would split or refuse, and the password parameter
    assert (
        redact_url("postgresql://team:se#cr?t@127.0.0.1:5432/e3") == "postgresql://team:***@127.0.0.1:5432/e3"
    )
    assert redact_url("postgresql://u:p/w@h/db") == "postgresql://u:***@h/db"
    assert redact_url("postgresql://u:p@[::1/db") == "postgresql://u:***@[::1/db"
    assert redact_url("postgresql://h/db?user=x&password=secret") == "postgresql://h/db?user=x&password=***"


def test_full_text_expressions_become_quoted_websearch_text() -> None:
    assert websearch_text('"kafka" AND "consumer"') == ('"kafka" "consumer"', False)
    assert websearch_text('"ml-kem" OR "node.js"') == ('"ml-kem" or "node.js"', True)
    assert websearch_text('"a""b" OR x') == ('"a b"', True)  # only quoted terms reach the server


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80))
def test_no_user_text_breaks_a_full_text_search(pg: PostgresStore, text: str) -> None:
    for mode in ("and", "or"):
        match = fts_match(text, mode=mode)  # type: ignore[arg-type]
        if match is not None:
            assert pg.fts_search(match, ArticleFilter(), limit=5) == []


def test_a_newer_schema_is_refused_and_left_alone(pg_server: PgServer) -> None:
    url = pg_server.fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations(version) VALUES (99)")
    with pytest.raises(StoreError, match="newer engfeed"):
        Store(url)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (99,)


def test_status_without_migrating_then_upgrade(pg_server: PgServer) -> None:
    pg_server.admin("CREATE DATABASE bare_status")
    url = pg_server.url_of("bare_status")
    bare = PostgresStore(url, migrate=False)
    status = bare.schema_status()
    assert (status.backend, status.version, status.pending) == ("postgresql", 0, status.latest)
    assert bare.migrate() == status.latest
    assert bare.schema_status().pending == 0
    bare.close_all()


def test_an_unreachable_server_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(StoreError, match=r"cannot open store postgresql://ann:\*\*\*@"):
        Store("postgresql://ann:pw@/nowhere?host=/nonexistent-socket-dir&connect_timeout=2")


def test_writers_wait_for_each_other_across_handles(pg: PostgresStore) -> None:
    other = PostgresStore(pg.url)  # another process, as far as the server knows
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with pg.transaction() as tx:
            holding.set()
            time.sleep(0.3)
            tx.execute("INSERT INTO meta(key, value) VALUES ('w', 'first')")
            order.append("first")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(5)
    with other.transaction() as tx:
        order.append("second")
        assert tx.execute("SELECT value FROM meta WHERE key = 'w'").fetchone() == ("first",)
    thread.join()
    assert order == ["first", "second"]
    other.close_all()


def test_the_change_marker_sees_another_handles_commit(pg: PostgresStore) -> None:
    other = PostgresStore(pg.url)
    before = pg.change_marker()
    assert pg.change_marker() == before  # nothing written: no needless index reloads
    other.set_meta("k", "v")
    assert pg.change_marker() != before
    other.close_all()


def test_bounded_search_gives_up_rather_than_waiting(pg: PostgresStore) -> None:
    arts = [
        Article(uid=f"u{i}", url=f"https://x.example/{i}", title=f"cache {i}", published=T0, source="X")
        for i in range(50)
    ]
    with pg.transaction() as tx:
        pg.upsert_articles(arts, source_id=None, conn=tx)
    found = pg.fts_search_bounded('"cache"', ArticleFilter(), limit=5, max_steps=10**9)
    assert found is not None and len(found) == 5


def test_threads_that_come_and_go_give_their_connections_back(pg: PostgresStore) -> None:
    def connections() -> int:
        row = pg.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone()
        return int(row[0])

    for _ in range(6):  # 60 short-lived threads, as a web server's worker threads come and go
        threads = [threading.Thread(target=pg.count_articles) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del threads
        gc.collect()
    assert connections() <= 20 + 1  # the pool's size, and this probe


def test_released_connections_are_reused(pg: PostgresStore) -> None:
    def work() -> None:
        pg.count_articles()
        pg.release()

    for _ in range(50):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    row = pg.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
    assert int(row.fetchone()[0]) <= 3


def test_a_server_that_went_away_is_a_store_error(pg: PostgresStore, pg_server: PgServer) -> None:
    pid = pg.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(DatabaseUnavailable, match="did not answer"):
        pg.count_articles()
    pg.release()  # the broken connection goes back (the pool discards it)
    assert pg.count_articles() == 0  # and the next call gets a working one


def test_a_connection_is_given_back_once(pg: PostgresStore) -> None:
    first = pg.conn
    pg.release()  # given back: the pool may lend it again
    second = pg.conn
    assert second.raw is first.raw  # lent again, to this thread
    del first
    gc.collect()  # the first wrapper's finalizer must not give it back a second time
    assert pg.pool_stats()["pool_available"] == 0  # still lent: nobody else can get it
    assert second.execute("SELECT 1").fetchone() == (1,)


def test_a_replaced_vector_is_searched_with_its_new_value(pg: PostgresStore) -> None:
    arts = [
        Article(uid=f"v{i}", url=f"https://x.example/v{i}", title=f"t{i}", published=T0, source="X")
        for i in range(3)
    ]
    with pg.transaction() as tx:
        ids = pg.upsert_articles(arts, source_id=None, conn=tx).new
    unit = np.eye(4, dtype=np.float16)
    pg.vectors.save("m", [(aid, unit[i].tobytes()) for i, aid in enumerate(ids)])
    assert pg.sync_vectors(4) == 3
    assert [aid for aid, _ in pg.nearest("m", [1.0, 0, 0, 0], 1)] == [ids[0]]
    pg.vectors.save("m", [(ids[2], unit[0].tobytes()), (ids[0], unit[3].tobytes())])  # re-embedded
    assert pg.sync_vectors(4) == 2  # their copies were emptied, and are filled again
    assert [aid for aid, _ in pg.nearest("m", [1.0, 0, 0, 0], 1)] == [ids[2]]


def _vector_articles(pg: PostgresStore, n: int) -> list[int]:
    arts = [
        Article(uid=f"h{i}", url=f"https://x.example/h{i}", title=f"t{i}", published=T0, source="X")
        for i in range(n)
    ]
    with pg.transaction() as tx:
        return pg.upsert_articles(arts, source_id=None, conn=tx).new


def test_a_big_store_searches_through_its_hnsw_index(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above HNSW_MIN_ROWS vectors the index is built once and answers for the whole store;
    a search among given ids stays exact. Both agree with an exact search in numpy here."""
    from engfeed.store import postgres

    rng = np.random.default_rng(7)
    ids = _vector_articles(pg, 300)
    vecs = rng.standard_normal((300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    pg.vectors.save("m", [(aid, v.astype(np.float16).tobytes()) for aid, v in zip(ids, vecs, strict=True)])
    assert pg.sync_vectors(16) == 300
    assert not pg.build_vector_index(16)  # below the threshold: exact scans
    monkeypatch.setattr(postgres, "HNSW_MIN_ROWS", 200)
    assert pg.build_vector_index(16) and pg.build_vector_index(16)  # built once, then found
    # A build that died half-way leaves an invalid index: it is not used, and built again.
    pg.conn.execute(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'article_vectors_hnsw'::regclass"
    )
    assert pg.vector_index_dim() is None
    assert pg.build_vector_index(16) and pg.vector_index_dim() == 16
    valid = pg.conn.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'article_vectors_hnsw'::regclass"
    )
    assert valid.fetchone()[0] is True
    pg.conn.execute("SET enable_seqscan = off")  # at 300 rows a scan is cheaper: is the index usable?
    plan = pg.conn.execute(
        "EXPLAIN SELECT article_id, embedding::halfvec(16) <=> ?::halfvec(16) AS d FROM article_vectors"
        " WHERE model = 'm' ORDER BY d LIMIT 10",  # as PostgresStore.nearest asks
        ("[" + ",".join(["0.25"] * 16) + "]",),
    ).fetchall()
    assert "article_vectors_hnsw" in " ".join(str(r[0]) for r in plan)  # the query matches its expression
    agree = []
    for q in rng.standard_normal((10, 16)).astype(np.float32):
        q /= np.linalg.norm(q)
        exact = [ids[i] for i in np.argsort(-(vecs @ q))[:10]]
        found = pg.nearest("m", q.tolist(), 10)
        agree.append(len({aid for aid, _ in found} & set(exact)) / 10)
        among = pg.nearest("m", q.tolist(), 3, ids[:50])  # exact among these
        assert [aid for aid, _ in among] == [ids[i] for i in np.argsort(-(vecs[:50] @ q))[:3]]
        assert found[0][1] == pytest.approx(float(vecs[ids.index(found[0][0])] @ q), abs=2e-3)
    assert np.mean(agree) >= 0.95  # through the index (scans are still off)
    pg.conn.execute("RESET enable_seqscan")
    pg.sync_vectors(8)  # a model of another size: the index of 16-dimension vectors goes
    assert not pg.conn.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'article_vectors_hnsw'").fetchall()


def test_upgrading_a_store_from_schema_2_moves_its_vectors(pg_server: PgServer) -> None:
    """Schema 3 moved the vector copies into their own table: an older store's vectors are
    carried over (filled from the stored blobs by the upgrade) and search as before."""
    from engfeed.store.base import migrations

    url = pg_server.fresh_database()
    with psycopg.connect(url, autocommit=True) as admin:  # a schema-2 store: start from nothing
        admin.execute("DROP SCHEMA public CASCADE")
        admin.execute("CREATE SCHEMA public")
    old = Store(url, migrate=False)
    assert isinstance(old, PostgresStore)
    with old.transaction() as tx:
        tx.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
        for number, sql in migrations("postgresql"):
            if number <= 2:
                tx.execute(sql)
                tx.execute("INSERT INTO schema_migrations(version) VALUES (?)", (number,))
    ids = _vector_articles(old, 2)
    unit = np.eye(4, dtype=np.float16)
    old.vectors.save("m", [(ids[0], unit[0].tobytes()), (ids[1], unit[1].tobytes())])
    old.close_all()

    new = Store(url)
    assert isinstance(new, PostgresStore) and new.schema_status().version >= 3
    assert new.vector_search and new.sync_vectors(4) == 0  # filled by the upgrade itself
    assert [aid for aid, _ in new.nearest("m", [0.0, 1.0, 0, 0], 1)] == [ids[1]]
    columns = {
        r[0]
        for r in new.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'embeddings'"
        )
    }
    assert "embedding" not in columns
    new.close_all()


def test_vectors_of_another_size_never_hold_up_the_others(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engfeed.store import postgres

    monkeypatch.setattr(postgres, "VECTOR_BATCH", 1)
    ids = _vector_articles(pg, 3)
    pg.vectors.save("old", [(ids[0], np.ones(8, dtype=np.float16).tobytes())])  # another model's size
    pg.vectors.save("m", [(aid, np.eye(4, dtype=np.float16)[i].tobytes()) for i, aid in enumerate(ids[1:])])
    assert pg.sync_vectors(4) == 2
    assert [aid for aid, _ in pg.nearest("m", [0.0, 1.0, 0, 0], 1)] == [ids[2]]


def test_indexing_through_the_feed_builds_the_hnsw_index(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that grows past HNSW_MIN_ROWS by ordinary indexing gets its index (not only
    through db copy), and concept search uses it."""
    from engfeed.feed import Feed
    from engfeed.store import postgres
    from test_angles import FakeEmbedder

    monkeypatch.setattr(postgres, "HNSW_MIN_ROWS", 20)
    _vector_articles(pg, 30)
    feed = Feed(pg, embedder=FakeEmbedder())  # type: ignore[arg-type]
    feed.index_pending()
    assert pg.vector_index_dim() == FakeEmbedder.dim
    assert feed.search_engine.vectors_in_database
    assert len(feed.search("t7", limit=5)) == 5


def test_an_outage_during_full_text_search_is_not_a_query_error(
    pg: PostgresStore, pg_server: PgServer
) -> None:
    pid = pg.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(DatabaseUnavailable):
        pg.fts_search('"caching"', ArticleFilter(), limit=5)
    pg.release()


def test_a_query_vector_with_nan_is_searched_not_refused(pg: PostgresStore) -> None:
    ids = _vector_articles(pg, 2)
    pg.vectors.save("m", [(aid, np.eye(4, dtype=np.float16)[i].tobytes()) for i, aid in enumerate(ids)])
    pg.sync_vectors(4)
    assert [aid for aid, _ in pg.nearest("m", [float("nan"), 1.0, 0, float("inf")], 1)] == [ids[1]]


def test_the_schedule_claim_survives_a_lost_connection_only_if_nobody_took_it(pg_server: PgServer) -> None:
    """One serve process runs the schedule. A database restart drops the advisory lock with
    its connection: the holder claims it anew on its next run, unless another took it."""
    url = pg_server.fresh_database()
    a, b = Store(url), Store(url)
    assert isinstance(a, PostgresStore) and isinstance(b, PostgresStore)
    try:
        assert a.claim_schedule() and not b.claim_schedule()
        assert a.claim_schedule()  # asked again, still held
        name = url.split("?")[0].rsplit("/", 1)[1]
        pg_server.admin(  # what a restart does to a's lock connection
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            f" WHERE l.locktype = 'advisory' AND l.granted AND d.datname = '{name}'"
        )
        deadline = time.monotonic() + 10  # the terminated backend lets go as it exits
        while not b.claim_schedule() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.claim_schedule()  # the lock was free: b runs the schedule now
        assert not a.claim_schedule()  # a notices, and stands down
        b.close_all()
        assert a.claim_schedule()
    finally:
        a.close_all()
        b.close_all()
