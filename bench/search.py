"""Search latency on synthetic stores of 10k / 100k / 1M articles.

    python bench/search.py                       # 10k and 100k
    python bench/search.py --sizes 1000000       # 1M (minutes to build, ~3 GB of disk)
    python bench/search.py --queries 300 --json

For each size a store is built once in ``bench/results/search-<N>.db`` (git-ignored):
synthetic titles, excerpts and bodies drawn from a Zipf vocabulary (English function words,
~330 real engineering terms, then a synthetic long tail), spread over five years, and one
synthetic vector per article written straight into the store as float16 (no model run per
article: vectors are drawn from a Gaussian fitted to real MiniLM embeddings of synthetic
texts, see ``VectorModel``).

Per query it times, in the same run and process:

* ``hybrid``: ``SearchEngine.search(q, limit=20)`` end to end: query embedding (every query
  is distinct, so the query cache never hits), FTS5 AND/OR, the dense top-k over all rows,
  fusion, loading the 20 articles and extracting their contexts. Model load and the first
  load of the vector matrix are excluded (warm-up).
* ``fts``: the raw FTS5 BM25 query (``Store.fts_search`` of the AND expression, top 20).
* ``dense``: a raw exact numpy top-20 (``matrix @ q`` + ``argpartition``, every row scored)
  on the same in-memory vectors, with the query vector precomputed.
* ``topk``: the engine's own dense top-100 (exact below ``IndexTuning.approx_min_rows`` vectors, two-stage
  above), whose recall@20 against the exact top-20 is reported too.
* ``embed``: the query embedding alone.

and reports p50/p95, hybrid/fts and hybrid/dense ratios, embedding throughput
(document passages/s and sentences/s) and the process's peak RSS (``ru_maxrss``).

Then, per size, the peak RSS of the real ``engfeed serve`` on that store (issue #13's memory
goal: <= 500 MB at 100k, <= 2.5 GB at 1M): the server is started as ``bench/web.py`` starts
it (embeddings on, no background refresh), answers ``--serve-queries`` distinct hybrid
searches on the page and the API plus the home page, and its ``VmHWM`` is read from
``/proc``. Its baseline in the same run: the same server on an empty store (the interpreter,
the web stack and the model), so the figure splits into "the product" and "the data".
``--no-serve`` skips it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from engfeed.embed import get_embedder  # noqa: E402
from engfeed.models import Article, ArticleFilter  # noqa: E402
from engfeed.query import fts_match  # noqa: E402
from engfeed.search import SearchEngine, document_text  # noqa: E402
from engfeed.store import Store  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BENCH_VERSION = "2"  # bump when the synthetic data changes (forces a rebuild)
DIM = 384

_FUNCTION_WORDS = (
    "the of and to a in is that for it as with was on be by this are or at from have an but not "
    "we they you which one all were can there their has been if more when will would so no out up "
    "what about into than them its only other some could time these two may then do first any new "
    "like our over such after also most made well where should because each how before through "
    "much those both used while very many even way same under us last while again since here own "
    "just between during without another against often still each few us off"
)
_TERMS = (
    "kubernetes latency raft consensus replication cache caching database postgres mysql kafka "
    "stream streaming pipeline batch scheduler queue broker partition shard sharding index indexes "
    "query queries optimizer compiler runtime garbage collector memory leak heap allocator thread "
    "threads concurrency lock mutex deadlock async await coroutine event loop network tcp http "
    "grpc protobuf json schema migration rollout canary deploy deployment ci build bazel docker "
    "container containers cluster node nodes pod autoscaling load balancer proxy envoy mesh "
    "observability tracing metrics logging alerting incident outage postmortem oncall reliability "
    "availability failover region datacenter redundancy backup restore snapshot consistency "
    "eventual linearizable transaction transactions isolation serializable mvcc vacuum btree lsm "
    "compaction bloom filter hash hashing encryption tls certificate authentication authorization "
    "oauth token secrets vault policy compliance audit privacy gdpr fraud spam abuse ranking "
    "recommendation search relevance embedding vector model training inference gpu tpu cuda "
    "transformer llm prompt agent evaluation experiment ab testing feature flag flags frontend "
    "react javascript typescript css rendering browser mobile android ios swift kotlin rust go "
    "golang java jvm python ruby rails django graphql rest api apis gateway rate limiting "
    "throttling backpressure retries timeout circuit breaker idempotency exactly once delivery "
    "ordering clock timestamp vector lamport gossip membership leader election quorum paxos "
    "zookeeper etcd consul terraform infrastructure cloud aws gcp azure serverless lambda "
    "functions cost billing capacity planning performance profiling flamegraph cpu benchmark "
    "throughput p99 tail regression monitoring dashboard sre slo sla error budget chaos "
    "resilience disaster recovery storage object blob s3 filesystem disk ssd nvme compression "
    "encoding columnar parquet analytics warehouse spark flink hadoop etl dbt airflow orchestration "
    "workflow video encoding codec streaming playback cdn edge caching dns routing bgp ipv6 quic"
)
FUNCTION_WORDS = _FUNCTION_WORDS.split()
TERMS = list(dict.fromkeys(_TERMS.split()))


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words = list(dict.fromkeys(FUNCTION_WORDS + TERMS))
    letters = "abcdefghijklmnopqrstuvwxyz"
    while len(words) < size:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(4, 10)))
        if w not in words:
            words.append(w)
    return words


class Zipf:
    """Draw words with Zipf(s) weights over a fixed vocabulary (fast, vectorised)."""

    def __init__(self, words: list[str], s: float, seed: int) -> None:
        ranks = np.arange(1, len(words) + 1, dtype=np.float64)
        p = ranks**-s
        self.cdf = np.cumsum(p / p.sum())
        self.words = np.asarray(words, dtype=object)
        self.rng = np.random.default_rng(seed)

    def draw(self, n: int) -> list[str]:
        idx = np.searchsorted(self.cdf, self.rng.random(n))
        idx = np.minimum(idx, len(self.words) - 1)
        out: list[str] = self.words[idx].tolist()
        return out


def sentence(z: Zipf, n: int) -> str:
    words = z.draw(n)
    return " ".join(words).capitalize() + "."


class VectorModel:
    """Embedding-like synthetic vectors: Gaussian with the mean and covariance of real ones.

    Uniform random unit vectors have no structure at all (every direction equally
    strong), unlike real sentence embeddings; they would make any two-stage search look
    worse than it is. So the model embeds a few hundred synthetic texts once, and draws
    vectors from a Gaussian with their mean and (slightly regularised) covariance.
    """

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        z = Zipf(vocabulary(50_000, rng), 1.07, seed)
        weights = [1.0 / (i + 1) ** 0.8 for i in range(len(TERMS))]
        texts = [
            " ".join(rng.choices(TERMS, weights=weights, k=rng.randint(2, 6))) + " " + sentence(z, 12)
            for _ in range(600)
        ]
        sample = get_embedder().embed(texts).astype(np.float64)
        self.mean = sample.mean(axis=0)
        cov = np.cov(sample, rowvar=False) + 1e-4 * np.eye(DIM)
        self.chol = np.linalg.cholesky(cov)
        self.rng = np.random.default_rng(seed)

    def draw(self, n: int) -> np.ndarray:
        x = self.rng.standard_normal((n, DIM)) @ self.chol.T + self.mean
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32)


def build_store(path: Path, n: int, *, model: str, seed: int = 1) -> Store:
    """Create (or reuse) a synthetic store of ``n`` articles with synthetic vectors."""
    store = Store(path)
    if store.get_meta("bench.size") == f"{n}/{BENCH_VERSION}" and store.vectors.count(model) == n:
        return store
    if store.count_articles() or store.vectors.count(model):
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        store = Store(path)
    rng = random.Random(seed)
    z = Zipf(vocabulary(50_000, rng), 1.07, seed)
    vectors = VectorModel(seed)
    start = datetime(2021, 1, 1, tzinfo=UTC)
    span = 5 * 365 * 86_400
    sources = [f"Blog {i:03d}" for i in range(200)]
    t0 = time.perf_counter()
    batch = 2000
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        arts = []
        for i in range(lo, hi):
            published = start + timedelta(seconds=int(span * i / n + rng.uniform(-3, 3) * 86_400))
            body = " ".join(sentence(z, rng.randint(8, 20)) for _ in range(rng.randint(4, 7)))
            arts.append(
                Article(
                    uid=f"syn{i:08d}",
                    url=f"https://blog{i % 200}.example.com/post/{i}",
                    title=" ".join(z.draw(rng.randint(8, 12))).capitalize(),
                    published=published,
                    source=sources[i % len(sources)],
                    excerpt=sentence(z, rng.randint(20, 35)),
                    text=body,
                    first_seen=published,
                )
            )
        with store.transaction() as tx:
            new_ids = store.upsert_articles(arts, source_id=None, conn=tx).new
        half = vectors.draw(hi - lo).astype("<f2")
        store.vectors.save(model, ((aid, half[j].tobytes()) for j, aid in enumerate(new_ids)))
        if (hi // batch) % 50 == 0 or hi == n:
            print(f"  built {hi}/{n} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    with store.transaction() as tx:
        tx.execute("INSERT INTO articles_fts(articles_fts) VALUES ('optimize')")
    store.set_meta("bench.size", f"{n}/{BENCH_VERSION}")
    return store


def make_queries(count: int, seed: int) -> list[str]:
    """Distinct 2-3 term engineering queries, Zipf-weighted over the term list."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(TERMS))]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        terms = rng.choices(TERMS, weights=weights, k=rng.choice((2, 2, 3)))
        q = " ".join(dict.fromkeys(terms))
        if q not in seen and len(q.split()) > 1:
            seen.add(q)
            out.append(q)
    return out


def pct(xs: Sequence[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


@dataclass
class SizeResult:
    size: int
    build_s: float
    load_s: float
    db_mb: float
    ms: dict[str, dict[str, float]]
    ratio: dict[str, float]
    rss_mb: float
    dense_recall_at_20: float
    two_stage: bool

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__


def bench_size(n: int, queries: int, seed: int) -> SizeResult:
    embedder = get_embedder()
    embedder.embed_query("warm up the model")  # model load excluded
    path = RESULTS / f"search-{n}.db"
    t = time.perf_counter()
    store = build_store(path, n, model=embedder.name, seed=seed)
    build_s = time.perf_counter() - t
    engine = SearchEngine(store, embedder)
    t = time.perf_counter()
    engine.search("warm up the vector matrix", limit=20)  # first matrix load excluded
    load_s = time.perf_counter() - t
    qs = make_queries(queries + 10, seed + n)
    for q in qs[:10]:  # warm caches (page cache, FTS structures)
        engine.search(q + " warmup", limit=20)
    qs = qs[10:]
    assert engine._index is not None
    view = engine._index.snapshot()
    # The raw baseline: one plain float32 matrix of every vector (the engine keeps a float16 tail).
    raw = np.concatenate([view.head, view.tail.astype(np.float32)], axis=1)
    times: dict[str, list[float]] = {"hybrid": [], "fts": [], "dense": [], "topk": [], "embed": []}
    rng = random.Random(seed)
    recalls: list[float] = []
    for i, q in enumerate(qs):
        expr = fts_match(q, mode="and") or '""'
        qvec = view.prepare(embedder.embed_query(q + " (precomputed)"))
        if i < 50:  # recall of the engine's dense top-20 against exact brute force
            exact = set(view.ids[np.argpartition(-(raw @ qvec), 20)[:20]].tolist())
            got = {aid for aid, _, _ in engine.rank(q + " (precomputed)", limit=20, mode="dense")}
            recalls.append(len(exact & got) / 20)
        runs: list[tuple[str, Callable[[], object]]] = [
            ("hybrid", lambda q=q: engine.search(q, limit=20)),
            ("fts", lambda expr=expr: store.fts_search(expr, ArticleFilter(), limit=20)),
            ("dense", lambda qvec=qvec: np.argpartition(-(raw @ qvec), 20)[:20]),
            ("topk", lambda qvec=qvec: view.top(qvec, 100)),
            ("embed", lambda q=q: embedder.embed_query(q + " (embed only)")),
        ]
        rng.shuffle(runs)  # no systematic order effects between the four
        for name, fn in runs:
            times[name].append(timed(fn))
    ms = {
        k: {"p50": round(pct(v, 50), 2), "p95": round(pct(v, 95), 2), "mean": round(statistics.fmean(v), 2)}
        for k, v in times.items()
    }
    ratio = {
        "hybrid/fts p50": round(ms["hybrid"]["p50"] / max(ms["fts"]["p50"], 1e-6), 1),
        "hybrid/dense p50": round(ms["hybrid"]["p50"] / max(ms["dense"]["p50"], 1e-6), 1),
        "hybrid/fts p95": round(ms["hybrid"]["p95"] / max(ms["fts"]["p95"], 1e-6), 1),
        "hybrid/dense p95": round(ms["hybrid"]["p95"] / max(ms["dense"]["p95"], 1e-6), 1),
    }
    db_mb = (
        sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()) / 2**20
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()
    recall = round(statistics.fmean(recalls), 4) if recalls else 1.0
    two_stage = view.rotation is not None
    return SizeResult(
        n, round(build_s, 1), round(load_s, 2), round(db_mb, 1), ms, ratio, round(rss, 1), recall, two_stage
    )


def _peak_rss_mb(pid: int) -> float:
    """``VmHWM`` (peak resident set) of a live process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status (not Linux?)")


def serve_rss(path: Path, queries: int, seed: int) -> float:
    """Peak RSS of ``engfeed serve`` on ``path`` after the home page and ``queries`` searches."""
    from web import free_port, server  # bench/web.py: the same server start as the web bench

    port = free_port()
    with server(path, port, embed=True) as proc:
        base = f"http://127.0.0.1:{port}"
        qs = make_queries(queries, seed + 7)
        urls = [f"{base}/"] + [
            f"{base}/?q={urllib.parse.quote(q)}" if i % 2 else f"{base}/api/search?q={urllib.parse.quote(q)}"
            for i, q in enumerate(qs)
        ]
        for url in urls:
            with urllib.request.urlopen(url, timeout=120) as resp:
                if resp.status != 200:
                    raise SystemExit(f"{url}: HTTP {resp.status}")
                resp.read()
        return _peak_rss_mb(proc.pid)


def serve_baseline_rss(queries: int, seed: int) -> float:
    """The same measurement on an empty store: what serving costs before any data."""
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.db"
        Store(empty).close()
        return serve_rss(empty, queries, seed)


def embed_throughput(seed: int) -> dict[str, float]:
    embedder = get_embedder()
    rng = random.Random(seed)
    z = Zipf(vocabulary(50_000, rng), 1.07, seed)
    docs = [
        document_text(" ".join(z.draw(10)), sentence(z, 30), " ".join(sentence(z, 15) for _ in range(12)))
        for _ in range(64)
    ]
    sents = [sentence(z, rng.randint(12, 30)) for _ in range(256)]
    embedder.embed(docs[:4])
    t = time.perf_counter()
    embedder.embed(docs)
    doc_rate = len(docs) / (time.perf_counter() - t)
    t = time.perf_counter()
    embedder.embed(sents)
    sent_rate = len(sents) / (time.perf_counter() - t)
    return {
        "document passages/s (~230 words)": round(doc_rate, 1),
        "sentences/s (12-30 words)": round(sent_rate, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="search latency benchmark")
    ap.add_argument(
        "--sizes", default="10000,100000", help="comma-separated store sizes (default %(default)s)"
    )
    ap.add_argument("--queries", type=int, default=200, help="timed queries per size (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-serve", action="store_true", help="skip the serve peak-RSS measurement")
    ap.add_argument(
        "--serve-queries", type=int, default=60, help="searches sent to serve (default %(default)s)"
    )
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    results = [bench_size(n, args.queries, args.seed) for n in sizes]
    throughput = embed_throughput(args.seed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    serve: dict[str, float] = {}
    if not args.no_serve:
        serve["empty"] = round(serve_baseline_rss(args.serve_queries, args.seed), 1)
        for n in sizes:
            serve[str(n)] = round(serve_rss(RESULTS / f"search-{n}.db", args.serve_queries, args.seed), 1)
    if args.json:
        print(
            json.dumps(
                {
                    "sizes": [r.as_dict() for r in results],
                    "embedding": throughput,
                    "max_rss_mb": rss,
                    "serve_peak_rss_mb": serve,
                },
                indent=2,
            )
        )
        return 0
    print(f"{'N':>9} {'what':<7} {'p50 ms':>8} {'p95 ms':>8} {'mean':>8}")
    for r in results:
        for name in ("hybrid", "fts", "dense", "topk", "embed"):
            m = r.ms[name]
            print(f"{r.size:>9} {name:<7} {m['p50']:>8.2f} {m['p95']:>8.2f} {m['mean']:>8.2f}")
        print(
            f"{'':>9} ratios: "
            + ", ".join(f"{k} {v}x" for k, v in r.ratio.items())
            + f"; matrix load {r.load_s} s, build {r.build_s} s, db {r.db_mb} MB,"
            + f" peak RSS so far {r.rss_mb} MB; engine dense recall@20 {r.dense_recall_at_20}"
            + (" (two-stage)" if r.two_stage else " (exact)")
        )
    print("embedding throughput: " + ", ".join(f"{k}: {v}" for k, v in throughput.items()))
    print(f"peak RSS (ru_maxrss): {rss:.0f} MB")
    if serve:
        targets = {100_000: 500.0, 1_000_000: 2560.0}
        print(f"engfeed serve peak RSS (VmHWM): empty store {serve['empty']:.0f} MB (baseline)")
        for n in sizes:
            mb = serve[str(n)]
            target = f"; target <= {targets[n]:.0f} MB" if n in targets else ""
            print(f"  {n:>9} articles: {mb:.0f} MB ({mb - serve['empty']:+.0f} MB over the baseline{target})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
