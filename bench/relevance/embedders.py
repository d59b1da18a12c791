"""Document embedding builds side by side: indexing speed and search quality in one run.

    python bench/relevance/embedders.py [--db PATH] [--json]

Both builds embed the whole relevance corpus (every article's document text and passages,
as an import does) into their own copy of the cached corpus store (``run.py`` builds it),
timed, and then rank the judged queries with BM25, dense and hybrid search. Queries are
embedded the same way for both (the dynamic-int8 query model), so only the documents'
vectors differ:

* ``reference``: the pinned model in length-sorted padded batches on 2 intra-op threads
  (``MiniLMEmbedder(fast_documents=False)``, what engfeed ran until 2026-11);
* ``unfused``: the dynamic-int8 build as engfeed ran it until 2026-12-04: self-attention not
  fused, ORT's load-time fusions all on; its queries run that build too;
* ``fast``: the dynamic-int8 build with fused attention, one text per call on 2 worker
  threads (the default).

Reports each build's time and texts/s, the speed ratios, nDCG@10 per mode, and for dense and
hybrid a paired bootstrap interval of (fast - reference) and (fast - unfused) over the
queries. The builds run in this process, one after the other, on the same machine state.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DEFAULT_DB, MODES, evaluate, load_queries, open_corpus, paired_bootstrap

from engfeed.embed import MiniLMEmbedder
from engfeed.fastmodel import build_query_model
from engfeed.search import SearchEngine, passages_of
from engfeed.store import Store

BUILDS: dict[str, dict[str, Any]] = {
    "reference": {"fast_documents": False},
    "unfused": {"fast_documents": True, "disabled_fusions": ()},
    "fast": {"fast_documents": True},
}


def copy_store(src: Path, dst: Path) -> None:
    """A consistent copy of the corpus store (SQLite's online backup: WAL included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def texts_per_article(store: Store) -> int:
    """Document texts plus passages that a full re-embed runs through the model."""
    total = 0
    for aid in store.all_ids():
        body = store.bodies([aid]).get(aid)
        if body is not None:
            total += 1 + len(passages_of(*body))
    return total


def run_build(name: str, db: Path, workdir: Path) -> dict[str, Any]:
    copy = workdir / f"{name}.db"
    copy_store(db, copy)
    store = Store(copy)
    if name == "unfused":  # its own cache, holding the build without the attention fusion
        embedder = MiniLMEmbedder(**BUILDS[name], cache_dir=workdir / "unfused-models")
        build_query_model(embedder.model_path, embedder.query_model_path, fuse=False)
    else:
        embedder = MiniLMEmbedder(**BUILDS[name])
    embedder.load()
    engine = SearchEngine(store, embedder)
    started = time.perf_counter()
    articles = engine.reindex()
    elapsed = time.perf_counter() - started
    queries = load_queries(store)
    ev = evaluate(engine, queries)
    texts = texts_per_article(store)
    engine.close()
    store.close()
    return {
        "model": embedder.name,
        "articles": articles,
        "texts": texts,
        "seconds": round(elapsed, 1),
        "texts_per_s": round(texts / elapsed, 1),
        "search": ev,
        "query_ids": [q.id for q in queries],
    }


def compare(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Speed ratio and paired nDCG@10 differences of the fast build against each other one."""
    fast = results["fast"]
    ids = fast["query_ids"]
    out: dict[str, Any] = {"speedup": {}, "ndcg_delta": {}}
    for base in ("reference", "unfused"):
        other = results[base]
        out["speedup"][base] = round(other["seconds"] / fast["seconds"], 2)
        out["ndcg_delta"][base] = {}
        for mode in ("dense", "hybrid"):
            a = [fast["search"][mode]["per_query"][i] for i in ids]
            b = [other["search"][mode]["per_query"][i] for i in ids]
            lo, hi = paired_bootstrap(a, b)
            out["ndcg_delta"][base][mode] = {
                "mean": round((sum(a) - sum(b)) / len(ids), 4),
                "ci95": [round(lo, 4), round(hi, 4)],
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--db", type=Path, default=DEFAULT_DB, help="cached corpus store (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    store, engine = open_corpus(args.db)
    engine.close()
    store.close()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in BUILDS:
            print(f"re-embedding the corpus with the {name} build...", file=sys.stderr, flush=True)
            results[name] = run_build(name, args.db, Path(tmp))
    summary = compare(results)
    if args.json:
        for r in results.values():
            for mode in MODES:
                r["search"][mode].pop("per_query", None)
            r.pop("query_ids")
        print(json.dumps({"builds": results, **summary}, indent=2))
        return 0
    print(
        f"{'build':<10} {'articles':>8} {'texts':>7} {'seconds':>8} {'texts/s':>8}"
        "  nDCG@10 bm25 / dense / hybrid"
    )
    for name, r in results.items():
        nd = " / ".join(f"{r['search'][m]['all']['ndcg@10']:.4f}" for m in MODES)
        print(
            f"{name:<10} {r['articles']:>8} {r['texts']:>7} {r['seconds']:>8.1f}"
            f" {r['texts_per_s']:>8.1f}  {nd}"
        )
    for base, deltas in summary["ndcg_delta"].items():
        print(f"speed: fast is {summary['speedup'][base]:.2f}x the {base} build")
        for mode, d in deltas.items():
            lo, hi = d["ci95"]
            print(f"nDCG@10 {mode}: fast - {base} = {d['mean']:+.4f} (95% CI {lo:+.4f}..{hi:+.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
