"""Concept search in PostgreSQL (pgvector) against the in-process index, on real vectors.

    .venv/bin/python bench/pgvector.py                 # 17k real vectors, then 100k
    .venv/bin/python bench/pgvector.py --sizes 17449   # only the real ones
    .venv/bin/python bench/pgvector.py --json

The vectors: the relevance corpus's real MiniLM document and passage vectors
(``bench/results/relevance/corpus.db``, built by ``bench/relevance/run.py``; 17,449), and
for larger sizes those plus vectors drawn from a Gaussian with their mean and covariance
(real embeddings cluster; uniform random vectors would make any index look worse than it
is). The queries: the relevance set's 44 judged queries, embedded by the model.

For each size, in the same run, on one embedded PostgreSQL server (the tests' wheel):

* ``memory``: the in-process index (``VectorIndex``, loaded from a SQLite store holding the
  same vectors), top 100 per query: the baseline.
* ``pg exact``: ``PostgresStore.nearest`` before the HNSW index exists (an exact scan of
  ``article_vectors``), and ``pg hnsw``: after ``build_vector_index`` (forced at every size,
  so both are measured), with the build time. Recall@10 and @100 against the exact top.
* ``layout`` (real vectors only): an exact scan of the same vectors as a ``vector`` column
  in the old wide ``embeddings`` row (schema 2) against the narrow ``halfvec`` table
  (schema 3): why the vectors moved.

Reports p50/p95 per query (the client's round trip included) and the ratio to ``memory``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from backends import embedded_postgres  # noqa: E402  (bench/backends.py: a throwaway server)
from engfeed.embed import get_embedder  # noqa: E402
from engfeed.models import Article  # noqa: E402
from engfeed.search.vectors import VectorIndex  # noqa: E402
from engfeed.store import PostgresStore, Store  # noqa: E402
from engfeed.store import postgres as pg_module  # noqa: E402

CORPUS = ROOT / "bench" / "results" / "relevance" / "corpus.db"
QUERIES = ROOT / "bench" / "relevance" / "data" / "queries.json"
RESULTS = ROOT / "bench" / "results" / "pgvector.json"
MODEL = "bench"
K = 100


def real_vectors() -> np.ndarray:
    if not CORPUS.exists():
        raise SystemExit(f"{CORPUS} is missing: run bench/relevance/run.py first")
    db = sqlite3.connect(CORPUS)
    blobs = [v for (v,) in db.execute("SELECT vec FROM embeddings ORDER BY article_id")]
    blobs += [v for (v,) in db.execute("SELECT vec FROM passages ORDER BY article_id, seq")]
    vecs = np.stack([np.frombuffer(b, dtype=np.float16).astype(np.float32) for b in blobs])
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def grown(real: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """``real`` and, past it, vectors drawn from a Gaussian fitted to it (``n`` in all)."""
    if n <= len(real):
        return real[:n]
    mean = real.mean(axis=0)
    cov = np.cov(real.astype(np.float64), rowvar=False) + 1e-4 * np.eye(real.shape[1])
    rng = np.random.default_rng(seed)
    more = rng.standard_normal((n - len(real), real.shape[1])) @ np.linalg.cholesky(cov).T + mean
    more /= np.linalg.norm(more, axis=1, keepdims=True)
    return np.concatenate([real, more.astype(np.float32)])


def fill(store: Store, vecs: np.ndarray) -> list[int]:
    """Articles with these vectors (float16, as the store keeps them)."""
    when = datetime(2025, 1, 1, tzinfo=UTC)
    ids: list[int] = []
    for start in range(0, len(vecs), 5000):
        arts = [
            Article(uid=f"b{i}", url=f"https://bench.example/{i}", title=f"t{i}", published=when)
            for i in range(start, min(len(vecs), start + 5000))
        ]
        with store.transaction() as tx:
            new = store.upsert_articles(arts, source_id=None, conn=tx).new
        store.vectors.save(
            MODEL,
            [
                (aid, vecs[i].astype(np.float16).tobytes())
                for i, aid in zip(range(start, start + len(new)), new, strict=True)
            ],
        )
        ids.extend(new)
    return ids


def pct(xs: Sequence[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def timed_tops(
    fn: Callable[[np.ndarray], list[int]], queries: np.ndarray
) -> tuple[dict[str, float], list[list[int]]]:
    for q in queries[:3]:
        fn(q)  # warm caches and plans
    times, tops = [], []
    for q in queries:
        t = time.perf_counter()
        tops.append(fn(q))
        times.append((time.perf_counter() - t) * 1000.0)
    return {"p50_ms": round(pct(times, 50), 2), "p95_ms": round(pct(times, 95), 2)}, tops


def recall(found: list[list[int]], exact: list[list[int]], k: int) -> float:
    return round(
        float(np.mean([len(set(f[:k]) & set(e[:k])) / k for f, e in zip(found, exact, strict=True)])), 3
    )


def bench_size(url: str, vecs: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    n = len(vecs)
    exact_rows = [list(np.argsort(-(vecs.astype(np.float16).astype(np.float32) @ q))[:K]) for q in queries]
    out: dict[str, Any] = {"vectors": n}

    with tempfile.TemporaryDirectory() as tmp:
        lite = Store(Path(tmp) / "m.db")
        ids = fill(lite, vecs)
        index = VectorIndex(vecs.shape[1])
        index.refresh(lite, MODEL)
        view = index.snapshot()
        as_ids = np.asarray(ids, dtype=np.int64)

        def memory(q: np.ndarray) -> list[int]:
            rows, _ = view.top(view.prepare(q), K)
            return [int(i) for i in as_ids[rows]]

        exact = [[ids[r] for r in rows] for rows in exact_rows]
        out["memory"], tops = timed_tops(memory, queries)
        out["memory"]["recall@10"], out["memory"]["recall@100"] = (
            recall(tops, exact, 10),
            recall(tops, exact, K),
        )
        lite.close_all()

    store = Store(url)
    assert isinstance(store, PostgresStore)
    ids = fill(store, vecs)
    assert store.sync_vectors(vecs.shape[1]) == n
    store.conn.execute("ANALYZE article_vectors")
    exact = [[ids[r] for r in rows] for rows in exact_rows]

    def database(q: np.ndarray) -> list[int]:
        return [aid for aid, _ in store.nearest(MODEL, q.tolist(), K)]

    out["pg exact"], tops = timed_tops(database, queries)
    out["pg exact"]["recall@100"] = recall(tops, exact, K)
    saved = pg_module.HNSW_MIN_ROWS
    pg_module.HNSW_MIN_ROWS = 0  # measure the index at every size
    t = time.perf_counter()
    assert store.build_vector_index(vecs.shape[1])
    build_s = time.perf_counter() - t
    pg_module.HNSW_MIN_ROWS = saved
    cast = f"halfvec({vecs.shape[1]})"
    plan = " ".join(
        str(r[0])
        for r in store.conn.execute(
            f"EXPLAIN SELECT article_id, embedding::{cast} <=> ?::{cast} AS d FROM article_vectors"
            f" WHERE model = ? ORDER BY d LIMIT 100",
            ("[" + ",".join(map(str, queries[0].tolist())) + "]", MODEL),
        )
    )
    out["pg hnsw"], tops = timed_tops(database, queries)
    out["pg hnsw"].update(
        {
            "recall@10": recall(tops, exact, 10),
            "recall@100": recall(tops, exact, K),
            "build_s": round(build_s, 1),
            "planner_uses_index": pg_module.HNSW_INDEX in plan,
        }
    )
    for key in ("pg exact", "pg hnsw"):
        out[key]["ratio_p50"] = round(out[key]["p50_ms"] / max(1e-6, out["memory"]["p50_ms"]), 1)
    with store.transaction() as tx:  # the next size starts from an empty database
        tx.execute("DELETE FROM articles")
    store.conn.execute(f"DROP INDEX IF EXISTS {pg_module.HNSW_INDEX}")
    store.close_all()
    return out


def layouts(url: str, vecs: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    """The same exact scan over the old wide row (schema 2: a float32 ``vector`` beside the
    float16 blob, ~2.3 KB, so TOASTed) and over the narrow ``halfvec`` table (schema 3)."""
    import psycopg

    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE old_layout (id bigint PRIMARY KEY, model text, vec bytea, embedding vector)"
        )
        conn.execute("CREATE TABLE new_layout (id bigint PRIMARY KEY, model text, embedding halfvec)")
        conn.execute("ALTER TABLE new_layout ALTER COLUMN embedding SET STORAGE PLAIN")
        with conn.cursor() as cur:
            for table in ("old_layout", "new_layout"):
                cols = "id, model, vec, embedding" if table == "old_layout" else "id, model, embedding"
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for i, v in enumerate(vecs):
                        text = "[" + ",".join(f"{x:.5f}" for x in v) + "]"
                        row = (
                            (i, MODEL, v.astype(np.float16).tobytes(), text)
                            if table == "old_layout"
                            else (i, MODEL, text)
                        )
                        copy.write_row(row)
                conn.execute(f"VACUUM ANALYZE {table}")
        for table, cast in (("old_layout", "vector"), ("new_layout", "halfvec")):

            def scan(q: np.ndarray, table: str = table, cast: str = cast) -> list[int]:
                lit = "[" + ",".join(f"{x:.6f}" for x in q) + "]"
                sql = f"SELECT id FROM {table} WHERE model = %s ORDER BY embedding <=> %s::{cast} LIMIT %s"
                return [int(r[0]) for r in conn.execute(sql, (MODEL, lit, K))]

            out[table], _ = timed_tops(scan, queries)
            size = conn.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()
            out[table]["mb"] = round(int(size[0]) / 2**20, 1) if size else None
        conn.execute("DROP TABLE old_layout, new_layout")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="17449,100000", help="numbers of vectors (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    real = real_vectors()
    raw = json.loads(QUERIES.read_text(encoding="utf-8"))["queries"]
    texts = [q["query"] if isinstance(q, dict) else str(q) for q in raw]
    queries = get_embedder().embed(texts).astype(np.float32)
    results: dict[str, Any] = {"queries": len(queries), "k": K, "sizes": []}
    with embedded_postgres() as url:
        Store(url).close_all()  # migrate
        results["layout"] = layouts(url, real, queries)
        print(
            f"layout at {len(real):,} real vectors (exact top {K}):",
            json.dumps(results["layout"]),
            flush=True,
        )
        for n in (int(x) for x in args.sizes.split(",")):
            row = bench_size(url, grown(real, n), queries)
            results["sizes"].append(row)
            print(json.dumps(row), flush=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"\n{'vectors':>8} {'memory p50':>11} {'pg exact p50':>13} {'pg hnsw p50':>12}"
            f" {'recall@10':>10} {'recall@100':>11} {'build':>7}"
        )
        for r in results["sizes"]:
            h = r["pg hnsw"]
            print(
                f"{r['vectors']:>8,} {r['memory']['p50_ms']:>9.2f}ms {r['pg exact']['p50_ms']:>11.2f}ms"
                f" {h['p50_ms']:>10.2f}ms {h['recall@10']:>10.3f} {h['recall@100']:>11.3f}"
                f" {h['build_s']:>6.1f}s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
