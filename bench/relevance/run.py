"""Relevance harness: how well do BM25, dense and hybrid search rank the judged set?

    python bench/relevance/run.py            # table (builds the corpus store on first run)
    python bench/relevance/run.py --json     # the same numbers as JSON
    python bench/relevance/run.py --sweep    # fusion-weight grid, with 2-fold cross-validation

The store of the whole shared corpus (``../shared/feeds`` + ``../shared/feeds-large``) is
built once through the ``Feed`` facade (parse, store, embed, label angles) and cached in
``bench/results/relevance/corpus.db`` (git-ignored). It is rebuilt with ``--rebuild``, and
re-embedded automatically when the embedder or what search embeds per article changes.

Judged queries: ``data/queries.json``; judged URLs are matched to stored articles through
the same identity the parser uses (``article_uid(dedup_key(url))``). Unjudged results
count as not relevant. Angle labels: ``data/angles.json``, compared with the labels the
store holds (see :func:`evaluate_angles`), and the judged set's held-out test split
(``data/angle-set``, see ``annotate.py evaluate``): the labeller, the seed's keyword rule and
the annotators' agreement, with bootstrap intervals.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from annotate import evaluate_set, print_set  # noqa: E402

from engfeed import search as search_mod  # noqa: E402
from engfeed.search import DEFAULT_FUSION, Mode, SearchEngine  # noqa: E402
from engfeed.store import Store  # noqa: E402
from engfeed.urls import article_uid, dedup_key  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("ENGFEED_SHARED", ROOT.parent / "shared"))
CORPUS = [SHARED / "feeds", SHARED / "feeds-large"]
DEFAULT_DB = ROOT / "bench" / "results" / "relevance" / "corpus.db"
MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")
K = 10


# ------------------------------------------------------------------------------- corpus


_PROBES = (
    ("Title only", "", ""),
    ("A title", "An excerpt. With two sentences.", ""),
    (
        "Long",
        "Intro sentence here.",
        " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400)),
    ),
    ("Dup", "Same start of the body", "Same start of the body, then more.\n\nA second paragraph! And so on?"),
)


def embed_signature(embedder_name: str) -> str:
    """Changes whenever what search embeds per article changes (forces a re-embed).

    Behavioural: hashes what ``document_text`` and ``passages_of`` return for fixed probe
    articles, so reformatting the code does not trigger a re-embed but any change does.
    """
    h = hashlib.sha256(embedder_name.encode())
    for probe in _PROBES:
        h.update(search_mod.document_text(*probe).encode())
        for passage in search_mod.passages_of(*probe):
            h.update(b"\x1f" + passage.encode())
    return h.hexdigest()[:16]


def corpus_signature() -> str:
    h = hashlib.sha256()
    for root in CORPUS:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(f"{p.relative_to(SHARED)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _progress(stage: str, done: int, total: int) -> None:
    if done == total or done % 500 < 32:
        print(f"  {stage}: {done}/{total}", file=sys.stderr, flush=True)


def open_corpus(db: Path, *, rebuild: bool = False) -> tuple[Store, SearchEngine]:
    """The cached corpus store (built or refreshed as needed) and a search engine on it."""
    from engfeed.embed import get_embedder
    from engfeed.feed import Feed

    if not all(p.is_dir() for p in CORPUS):
        raise SystemExit(f"shared corpus not found under {SHARED} (set ENGFEED_SHARED)")
    if rebuild and db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    feed = Feed.open(db, embed=True)
    store = feed.store
    embedder = get_embedder()
    want_corpus = corpus_signature()
    if store.get_meta("bench.corpus") != want_corpus:
        t = time.perf_counter()
        print(f"importing the corpus into {db} (one-off, minutes)...", file=sys.stderr, flush=True)
        feed.import_paths(CORPUS, progress=_progress)
        store.set_meta("bench.corpus", want_corpus)
        store.set_meta("bench.embed", embed_signature(embedder.name))
        print(f"  imported in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    want_embed = embed_signature(embedder.name)
    if store.get_meta("bench.embed") != want_embed:
        t = time.perf_counter()
        print("what search embeds changed: re-embedding the corpus...", file=sys.stderr, flush=True)
        feed.reindex(progress=_progress)
        store.set_meta("bench.embed", want_embed)
        print(f"  re-embedded in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    feed.index_pending(progress=_progress)
    return store, SearchEngine(store, embedder)


def uid_of(url: str) -> str:
    return article_uid(dedup_key(url))


def resolve(store: Store, url: str, cache: dict[str, int | None]) -> int | None:
    if url not in cache:
        art = store.article(uid_of(url))
        cache[url] = None if art is None else art.id
    return cache[url]


# ------------------------------------------------------------------------------ metrics


@dataclass(slots=True)
class Query:
    id: str
    text: str
    style: str
    grades: dict[int, int]  # article id -> grade
    missing: int = 0


def load_queries(store: Store) -> list[Query]:
    raw = json.loads((DATA / "queries.json").read_text(encoding="utf-8"))
    cache: dict[str, int | None] = {}
    out: list[Query] = []
    for q in raw["queries"]:
        grades: dict[int, int] = {}
        missing = 0
        for j in q["judgements"]:
            aid = resolve(store, j["url"], cache)
            if aid is None:
                missing += 1
                continue
            grades[aid] = max(grades.get(aid, 0), int(j["grade"]))
        out.append(Query(q["id"], q["query"], q.get("style", "concept"), grades, missing))
    return out


def ndcg(ranked: Sequence[int], grades: dict[int, int], k: int = K) -> float:
    dcg = sum((2 ** grades.get(a, 0) - 1) / math.log2(i + 2) for i, a in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def ndcg_condensed(ranked: Sequence[int], grades: dict[int, int], k: int = K) -> float:
    """nDCG' (Sakai 2007): nDCG of the ranking with unjudged articles removed.

    With shallow judgement pools most retrieved articles are unjudged; plain nDCG then
    counts them all as irrelevant and mostly measures overlap with the pool.
    """
    return ndcg([a for a in ranked if a in grades], grades, k)


def recall(ranked: Sequence[int], grades: dict[int, int], k: int = K) -> float:
    relevant = {a for a, g in grades.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr(ranked: Sequence[int], grades: dict[int, int]) -> float:
    for i, a in enumerate(ranked, 1):
        if grades.get(a, 0) > 0:
            return 1.0 / i
    return 0.0


def judged_at_k(ranked: Sequence[int], grades: dict[int, int], k: int = K) -> float:
    top = ranked[:k]
    return sum(1 for a in top if a in grades) / len(top) if top else 0.0


@dataclass(slots=True)
class Scores:
    ndcg: list[float] = field(default_factory=list)
    ndcg_c: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)
    mrr: list[float] = field(default_factory=list)
    judged: list[float] = field(default_factory=list)

    def add(self, ranked: Sequence[int], grades: dict[int, int]) -> None:
        self.ndcg.append(ndcg(ranked, grades))
        self.ndcg_c.append(ndcg_condensed(ranked, grades))
        self.recall.append(recall(ranked, grades))
        self.mrr.append(mrr(ranked, grades))
        self.judged.append(judged_at_k(ranked, grades))

    def summary(self) -> dict[str, float]:
        def mean(xs: list[float]) -> float:
            return sum(xs) / len(xs) if xs else 0.0

        return {
            "ndcg@10": round(mean(self.ndcg), 4),
            "ndcg'@10": round(mean(self.ndcg_c), 4),
            "recall@10": round(mean(self.recall), 4),
            "mrr": round(mean(self.mrr), 4),
            "judged@10": round(mean(self.judged), 4),
            "n": len(self.ndcg),
        }


def rankings(
    engine: SearchEngine, queries: Sequence[Query], mode: Mode, depth: int = 100
) -> dict[str, list[int]]:
    return {q.id: [aid for aid, _, _ in engine.rank(q.text, limit=depth, mode=mode)] for q in queries}


def evaluate(
    engine: SearchEngine, queries: Sequence[Query], modes: Sequence[Mode] = MODES
) -> dict[str, dict[str, dict[str, float]]]:
    """{mode: {"all"|"concept"|"keyword": metrics}} plus per-query nDCG under "per_query"."""
    out: dict[str, dict[str, Any]] = {}
    for mode in modes:
        ranked = rankings(engine, queries, mode)
        groups: dict[str, Scores] = {"all": Scores()}
        per_query: dict[str, float] = {}
        for q in queries:
            for name in ("all", q.style):
                groups.setdefault(name, Scores()).add(ranked[q.id], q.grades)
            per_query[q.id] = round(ndcg(ranked[q.id], q.grades), 4)
        out[mode] = {name: s.summary() for name, s in groups.items()}
        out[mode]["per_query"] = per_query
    return out


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n: int = 2000, seed: int = 7
) -> tuple[float, float]:
    """95% bootstrap interval of mean(a - b) over queries."""
    import random

    rng = random.Random(seed)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    means = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(n))
    return means[int(0.025 * n)], means[int(0.975 * n) - 1]


# ------------------------------------------------------------------------------- angles


def evaluate_angles(store: Store) -> dict[str, dict[str, float]]:
    """Per-angle precision/recall of the labels ``store`` holds for the articles of angles.json.

    Works however the labels were produced: it only reads ``article_angles`` back through
    the store (articles carry their angles).
    """
    raw = json.loads((DATA / "angles.json").read_text(encoding="utf-8"))
    names: list[str] = list(raw["angles"])
    counts = {a.casefold(): {"tp": 0, "fp": 0, "fn": 0} for a in names}
    found = 0
    for item in raw["articles"]:
        art = store.article(uid_of(item["url"]))
        if art is None:
            continue
        found += 1
        gold = {a.casefold() for a in item["angles"]}
        predicted = {m.name.casefold() for m in art.angles}
        for name in counts:
            if name in predicted and name in gold:
                counts[name]["tp"] += 1
            elif name in predicted:
                counts[name]["fp"] += 1
            elif name in gold:
                counts[name]["fn"] += 1
    out: dict[str, dict[str, float]] = {}
    total = {"tp": 0, "fp": 0, "fn": 0}
    for name in names:
        c = counts[name.casefold()]
        for key in total:
            total[key] += c[key]
        out[name] = _pr(c)
    out["(micro)"] = _pr(total)
    out["(micro)"]["articles"] = found
    out["(micro)"]["labelled"] = len(raw["articles"])
    with_angle, articles = store.angles.coverage()
    out["(corpus)"] = {"articles": articles, "with_angle": round(with_angle / max(1, articles), 4)}
    return out


def _pr(c: dict[str, int]) -> dict[str, float]:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    return {
        "precision": round(p, 3),
        "recall": round(r, 3),
        "support": c["tp"] + c["fn"],
        "predicted": c["tp"] + c["fp"],
    }


# -------------------------------------------------------------------------------- sweep


SWEEP_GRID: dict[str, list[float]] = {
    "bm25": [0.15, 0.3, 0.45],  # with dense fixed at 0.7: only the ratio matters, bar recency
    "or_discount": [0.25, 0.5, 1.0],
    "recency": [0.0, 0.03, 0.1],
    "passage": [0.0, 0.3, 0.6],
}


def sweep(engine: SearchEngine, queries: Sequence[Query]) -> dict[str, Any]:
    """nDCG@10 of hybrid over a coarse grid, plus a 2-fold cross-validated estimate.

    The cross-validation picks the best grid point on half of the queries and scores it
    on the other half (both ways): how much of the grid's best is real, not fitted.
    """
    base = engine.fusion
    rows: list[dict[str, Any]] = []
    keys = list(SWEEP_GRID)
    for values in itertools.product(*(SWEEP_GRID[k] for k in keys)):
        setting = dict(zip(keys, values, strict=True))
        engine.fusion = replace(base, **setting)
        ranked = rankings(engine, queries, "hybrid", depth=K)
        per = [ndcg(ranked[q.id], q.grades) for q in queries]
        rows.append({**setting, "per": per, "ndcg@10": sum(per) / len(per)})
    engine.fusion = base
    ordered = sorted(queries, key=lambda q: q.id)
    half = {q.id for i, q in enumerate(ordered) if i % 2 == 0}
    idx_a = [i for i, q in enumerate(queries) if q.id in half]
    idx_b = [i for i, q in enumerate(queries) if q.id not in half]
    heldout = []
    for train, test in ((idx_a, idx_b), (idx_b, idx_a)):
        best = max(rows, key=lambda r: sum(r["per"][i] for i in train))
        heldout.append(sum(best["per"][i] for i in test) / len(test))
    default = next((r for r in rows if all(math.isclose(r[k], getattr(base, k)) for k in keys)), None)
    rows.sort(key=lambda r: -r["ndcg@10"])
    return {
        "rows": rows,
        "cv_heldout_ndcg@10": round(sum(heldout) / 2, 4),
        "default_ndcg@10": None if default is None else round(default["ndcg@10"], 4),
    }


ABLATIONS: dict[str, dict[str, Any]] = {
    "hybrid, no passage lift": {"passage": 0.0},
    "hybrid, no recency prior": {"recency": 0.0},
    "hybrid, OR matches at full weight": {"or_discount": 1.0},
    "hybrid, AND only (no OR fallback)": {"and_min_hits": 0},
    "dense + passages (bm25 weight 0)": {"bm25": 0.0},
    "equal RRF (k=60), instead of convex": {"rrf_k": 60, "dense": 1.0, "bm25": 1.0, "recency": 0.0},
    "weighted RRF (k=60, bm25 0.5)": {"rrf_k": 60, "dense": 1.0, "bm25": 0.5, "recency": 0.0},
}


def ablations(engine: SearchEngine, queries: Sequence[Query]) -> dict[str, dict[str, float]]:
    base = engine.fusion
    out: dict[str, dict[str, float]] = {}
    for name, change in ABLATIONS.items():
        engine.fusion = replace(base, **change)
        ranked = rankings(engine, queries, "hybrid")
        scores = Scores()
        for q in queries:
            scores.add(ranked[q.id], q.grades)
        out[name] = scores.summary()
    engine.fusion = base
    return out


# -------------------------------------------------------------------------------- output


def print_table(result: dict[str, Any], out: Callable[[str], None] = print) -> None:
    ev = result["search"]
    out(
        f"Judged queries: {result['queries']} ({result['concept']} concept, {result['keyword']} keyword); "
        f"judged articles not in the store: {result['missing_judgements']}"
    )
    out("")
    cond = "nDCG'@10"
    out(f"{'mode':<8} {'subset':<8} {'nDCG@10':>8} {'R@10':>7} {'MRR':>7} {'judged@10':>10} {cond:>9}")
    for mode in MODES:
        if mode not in ev:
            continue
        for subset in ("all", "concept", "keyword"):
            m = ev[mode].get(subset)
            if m is None:
                continue
            out(
                f"{mode:<8} {subset:<8} {m['ndcg@10']:>8.3f} {m['recall@10']:>7.3f} {m['mrr']:>7.3f}"
                f" {m['judged@10']:>10.2f} {m[cond.lower()]:>9.3f}"
            )
    abl = result.get("ablations")
    if abl:
        out("")
        out("ablations (all queries):")
        for name, m in abl.items():
            out(f"  {name:<38} nDCG@10 {m['ndcg@10']:.3f}  R@10 {m['recall@10']:.3f}  MRR {m['mrr']:.3f}")
    ci = result.get("hybrid_vs")
    if ci:
        out("")
        for other, (lo, hi, delta) in ci.items():
            out(f"hybrid - {other}: nDCG@10 {delta:+.3f} (95% paired bootstrap CI {lo:+.3f} .. {hi:+.3f})")
    angles = result.get("angles")
    if angles:
        out("")
        micro = angles["(micro)"]
        out(f"Angles ({micro['articles']}/{micro['labelled']} labelled articles found in the store)")
        out(f"{'angle':<36} {'precision':>9} {'recall':>7} {'support':>8} {'predicted':>10}")
        for name, m in angles.items():
            if name == "(corpus)":
                continue
            out(
                f"{name:<36} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['support']:>8}"
                f" {m['predicted']:>10}"
            )
        corpus = angles.get("(corpus)")
        if corpus:
            out(f"Corpus articles with an angle: {corpus['with_angle']:.1%} of {corpus['articles']}")
    if result.get("angle_set"):
        out("")
        print_set(result["angle_set"], out)
    out("")
    out(f"fusion: {result['fusion']}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--db", type=Path, default=DEFAULT_DB, help="cached corpus store (default: %(default)s)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the corpus store from scratch")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--sweep", action="store_true", help="grid-search the fusion weights (prints the top 15)")
    ap.add_argument("--per-query", action="store_true", help="also print nDCG@10 per query and mode")
    ap.add_argument("--no-angles", action="store_true", help="skip the angle evaluation")
    args = ap.parse_args(argv)

    store, engine = open_corpus(args.db, rebuild=args.rebuild)
    queries = load_queries(store)
    if args.sweep:
        result = sweep(engine, queries)
        print(f"{'bm25':>6} {'or_disc':>8} {'recency':>8} {'passage':>8} {'nDCG@10':>8}   (dense weight 0.7)")
        for r in result["rows"][:15]:
            cells = [
                f"{r[k]:>{8 if k != 'bm25' else 6}}" for k in ("bm25", "or_discount", "recency", "passage")
            ]
            print(" ".join(cells) + f" {r['ndcg@10']:>8.4f}")
        print(f"grid points: {len(result['rows'])}; worst {result['rows'][-1]['ndcg@10']:.4f}")
        print(f"default setting: {result['default_ndcg@10']}")
        print(f"2-fold cross-validated nDCG@10 of the grid's choice: {result['cv_heldout_ndcg@10']}")
        return 0
    ev = evaluate(engine, queries)
    result: dict[str, Any] = {
        "queries": len(queries),
        "concept": sum(q.style == "concept" for q in queries),
        "keyword": sum(q.style == "keyword" for q in queries),
        "missing_judgements": sum(q.missing for q in queries),
        "search": ev,
        "fusion": asdict(engine.fusion) if engine.fusion is not DEFAULT_FUSION else asdict(DEFAULT_FUSION),
    }
    ids = [q.id for q in queries]
    hy = [ev["hybrid"]["per_query"][i] for i in ids]
    result["hybrid_vs"] = {}
    for other in ("bm25", "dense"):
        ot = [ev[other]["per_query"][i] for i in ids]
        lo, hi = paired_bootstrap(hy, ot)
        result["hybrid_vs"][other] = (round(lo, 4), round(hi, 4), round((sum(hy) - sum(ot)) / len(ids), 4))
    result["ablations"] = ablations(engine, queries)
    if not args.no_angles:
        result["angles"] = evaluate_angles(store)
        result["angle_set"] = evaluate_set("test")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
        if args.per_query:
            print("")
            print(f"{'query':<6} {'style':<8} {'bm25':>6} {'dense':>6} {'hybrid':>6}  text")
            for q in queries:
                vals = [ev[m]["per_query"][q.id] for m in MODES]
                print(f"{q.id:<6} {q.style:<8} {vals[0]:>6.3f} {vals[1]:>6.3f} {vals[2]:>6.3f}  {q.text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
