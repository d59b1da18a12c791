"""Web serving benchmark: the real ``engfeed serve`` over a 100k-article synthetic store.

    .venv/bin/python bench/web.py                      # build/reuse the store, run, print a table
    .venv/bin/python bench/web.py --vectors            # + synthetic vectors: hybrid search with the
                                                       #   real query model (realistic cost, not ranking)
    .venv/bin/python bench/web.py --duration 3 --concurrency 1,8 --json bench/results/web.json
    .venv/bin/python bench/web.py --database-url postgresql://... --workers 1,4
                                                       # + the same store on PostgreSQL, and
                                                       #   1 and 4 web processes, in one run

What it does:

1. Builds (once; reused afterwards) ``bench/results/web-100k.db`` (git-ignored): 100,000
   synthetic articles from 60 companies over 13 years, with engineering vocabulary so that
   angles get labelled and BM25 has something to rank. ``--vectors`` adds one vector per
   article under the real model's name, drawn like ``bench/search.py``'s (a Gaussian fitted
   to real MiniLM embeddings: uniform random vectors have none of their structure and are
   the worst case for any approximate index, in-process or HNSW).
2. Starts the real server (``python -m engfeed --db ... serve``: uvicorn, uvloop, httptools,
   one worker) on a free 127.0.0.1 port, with ``ENGFEED_REFRESH_INTERVAL=0`` and
   ``ENGFEED_EMBED=0`` (``1`` with ``--vectors``).
3. For each endpoint and concurrency level: a warm-up, then a bounded run (``--duration``
   seconds, ``--concurrency`` keep-alive connections) from a minimal asyncio HTTP/1.1 client
   (cheaper than httpx, so the 2-core box spends its time in the server, not the client).
4. Reports requests/s and p50/p95/p99 latency per endpoint, and ratios against ``/healthz``
   (the bare baseline route: it asks the database at most once a second) measured in the same run.
5. With ``--database-url``, copies the store into that (empty, or earlier copied) PostgreSQL
   database (``engfeed db copy``) and runs every scenario there too, in the same run. With
   ``--workers 1,4``, runs ``serve --workers N`` for each N; runs with more than one process
   measure the throughput scenarios only, at the highest ``--concurrency``.

Latency is measured at the client, so at concurrency > 1 it includes queueing; the
concurrency-1 rows are the per-request service time the page targets refer to
(p95 <= 25 ms for the home page, <= 50 ms for the search page).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from engfeed.store import Store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STORE_VERSION = "web-bench-1"
VECTORS_VERSION = "fitted-gaussian-1"  # bump when the vectors change (they are redrawn)
UNCACHED_VIEWS = 400  # distinct views per "uncached" scenario: more than the page cache holds

COMPANIES = [
    "Slack", "Meta", "AWS", "Netflix", "Cloudflare", "Stripe", "Dropbox", "GitHub", "Google", "Microsoft",
    "Spotify", "Uber", "Airbnb", "LinkedIn", "Pinterest", "Shopify", "Discord", "Figma", "Datadog",
    "Twilio", "Lyft", "DoorDash", "Instacart", "Etsy", "Yelp", "Reddit", "Atlassian", "Zalando",
    "Booking", "Expedia", "Grab", "Gojek", "Rakuten", "Mercari", "Canva", "Notion", "Vercel", "Fly",
    "Heroku", "DigitalOcean", "Fastly", "Akamai", "MongoDB", "Elastic", "Confluent", "Databricks",
    "Snowflake", "HashiCorp", "GitLab", "Sentry", "PagerDuty", "Segment", "Intercom", "Zendesk",
    "Asana", "Duolingo", "Robinhood", "Coinbase", "Square", "Artsy",
]  # fmt: skip
TOPICS = [
    "tail latency", "throughput", "p99", "caching", "profiling", "flame graph", "garbage collection",
    "replication", "failover", "incident", "postmortem", "outage", "consistency", "streaming",
    "kafka", "consensus", "raft", "sharding", "postgres", "mysql", "sqlite", "index", "query planner",
    "kubernetes", "containers", "service mesh", "load balancer", "autoscaling", "observability",
    "tracing", "metrics", "alerting", "on-call", "ci", "build system", "code review", "monorepo",
    "testing", "fuzzing", "security", "encryption", "authentication", "machine learning", "inference",
    "gpu", "embeddings", "recommendation", "search ranking", "compiler", "rust", "go", "python",
    "java", "memory usage", "cpu utilization", "cold start", "migration", "architecture",
    "microservices", "event sourcing", "data pipeline", "batch jobs", "feature flags", "mobile",
    "react", "accessibility", "design systems", "networking", "dns", "tls", "http/3", "edge",
]  # fmt: skip
VERBS = ["How we", "Why we", "Lessons from", "Scaling", "Rethinking", "Inside", "Debugging", "Building",
         "Migrating", "Measuring", "Taming", "Speeding up", "Hardening", "Designing"]  # fmt: skip
FILLER = [
    "the", "team", "system", "service", "production", "engineers", "users", "requests", "data",
    "cluster", "region", "deploy", "rollout", "week", "month", "results", "design", "tradeoff",
    "approach", "problem", "solution", "change", "workload", "traffic", "platform", "storage",
    "network", "compute", "cost", "reliability", "performance", "scale", "growth", "tooling",
]  # fmt: skip
QUERIES = [
    "tail latency",
    "kafka replication",
    "region failover",
    "postgres migration",
    "gpu inference",
    "keeping services up when a region fails",
    "build system caching",
    "flame graph profiling",
    "incident postmortem",
    "search ranking embeddings",
    "kubernetes autoscaling",
    "memory usage",
]


# -- synthetic store -------------------------------------------------------------------------------
def _sentence(rng: random.Random, topics: Sequence[str], words: int) -> str:
    out = []
    for _ in range(words):
        out.append(rng.choice(topics) if rng.random() < 0.18 else rng.choice(FILLER))
    text = " ".join(out)
    return text[0].upper() + text[1:] + "."


def synthetic_articles(n: int, seed: int = 7) -> Iterator[object]:
    from engfeed.models import Article

    rng = random.Random(seed)
    start = datetime(2013, 1, 1, tzinfo=UTC)
    span = int((datetime(2026, 1, 1, tzinfo=UTC) - start).total_seconds())
    for i in range(n):
        company = COMPANIES[min(len(COMPANIES) - 1, int(rng.paretovariate(1.2)) - 1)]
        topics = rng.sample(TOPICS, 3)
        title = f"{rng.choice(VERBS)} {topics[0]} for {topics[1]} at {company}"
        excerpt = " ".join(_sentence(rng, topics, rng.randint(10, 18)) for _ in range(2))
        body = " ".join(_sentence(rng, topics, rng.randint(12, 24)) for _ in range(rng.randint(5, 10)))
        yield Article(
            uid=f"syn-{i:07d}",
            url=f"https://{company.lower()}.example.com/blog/{i}",
            title=title,
            published=start + timedelta(seconds=rng.randrange(span)),
            source=company,
            excerpt=excerpt[:300],
            text=f"{excerpt} {body}",
            summary_html=f"<p>{excerpt}</p><p>{body}</p>",
        )


def synthetic_angles(store: Store) -> None:
    """Give about 60% of the articles one or two of the bundled angles, with evidence terms.

    Assigned directly rather than by the labeller: the web layer only renders angles, and
    labelling 100k synthetic (cue-dense) articles would dominate the build time.
    """
    from engfeed.angles import AngleLabeler, load_angles
    from engfeed.models import AngleMatch

    angles = load_angles(None)
    signature = AngleLabeler(angles, None).signature
    rng = random.Random(11)
    ids = store.all_ids()
    for start in range(0, len(ids), 5000):
        labels: list[tuple[int, list[AngleMatch]]] = []
        for aid in ids[start : start + 5000]:
            chosen = rng.sample(angles, rng.choice((0, 0, 1, 1, 1, 2)))
            labels.append(
                (
                    aid,
                    [
                        AngleMatch(
                            a.name, tuple(rng.sample(a.terms, min(len(a.terms), rng.randint(1, 3)))), 0.5
                        )
                        for a in chosen
                    ],
                )
            )
        store.angles.save(labels, signature)


def build_store(path: Path, n: int, *, vectors: bool) -> None:
    from engfeed.models import Article
    from engfeed.store import Store

    store = Store(path)
    if store.get_meta("bench") == f"{STORE_VERSION}:{n}":
        print(f"reusing {path} ({store.count_articles():,} articles)")
    else:
        t0 = time.perf_counter()
        if store.count_articles() != n:
            batch: list[Article] = []
            done = 0
            for art in synthetic_articles(n):
                assert isinstance(art, Article)
                batch.append(art)
                if len(batch) == 5000:
                    with store.transaction() as tx:
                        store.upsert_articles(batch, source_id=None, conn=tx)
                    done += len(batch)
                    batch = []
                    print(f"\r  inserted {done:,}/{n:,}", end="", flush=True)
            if batch:
                with store.transaction() as tx:
                    store.upsert_articles(batch, source_id=None, conn=tx)
            print(f"\r  inserted {n:,} articles in {time.perf_counter() - t0:.0f}s")
        t0 = time.perf_counter()
        synthetic_angles(store)
        print(f"  assigned angles in {time.perf_counter() - t0:.0f}s")
        store.set_meta("bench", f"{STORE_VERSION}:{n}")
    if vectors:
        from engfeed.embed import MINILM_DIM, MiniLMEmbedder, to_blob
        from search import VectorModel  # bench/search.py: embedding-like synthetic vectors

        model = MiniLMEmbedder().name
        if store.vectors.count(model) < n or store.get_meta("bench_vectors") != VECTORS_VERSION:
            t0 = time.perf_counter()
            draw = VectorModel(seed=3)
            ids = store.all_ids()
            for start in range(0, len(ids), 10000):
                chunk = ids[start : start + 10000]
                mat = draw.draw(len(chunk))
                assert mat.shape[1] == MINILM_DIM
                store.vectors.save(model, ((aid, to_blob(vec)) for aid, vec in zip(chunk, mat, strict=True)))
            store.set_meta("bench_vectors", VECTORS_VERSION)
            print(f"  stored {len(ids):,} embedding-like vectors in {time.perf_counter() - t0:.0f}s")
    store.close()


# -- the server ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(db: Path | str, port: int, *, embed: bool, workers: int = 1) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, ENGFEED_REFRESH_INTERVAL="0", ENGFEED_EMBED="1" if embed else "0")
    env.pop("ENGFEED_DB", None)
    env.pop("ENGFEED_DATABASE_URL", None)
    where = "--database-url" if str(db).startswith("postgresql://") else "--db"
    cmd = [sys.executable, "-m", "engfeed", where, str(db), "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    log = open(RESULTS / "web-server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}; see {RESULTS / 'web-server.log'}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("server did not start within 120 s")
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# -- the load client -------------------------------------------------------------------------------
class HTTPError(Exception):
    pass


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> tuple[int, int]:
    writer.write(raw)
    status_line = await reader.readline()
    if not status_line:
        raise HTTPError("connection closed")
    status = int(status_line.split(b" ", 2)[1])
    length = -1
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    size = 0
    if chunked:
        while True:
            n = int((await reader.readline()).strip().split(b";")[0], 16)
            if n == 0:
                await reader.readline()
                break
            size += len(await reader.readexactly(n + 2)) - 2
    elif length >= 0:
        size = len(await reader.readexactly(length))
    else:
        raise HTTPError("response without length")
    return status, size


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_bytes: int
    rps_vs_baseline: float = 0.0
    p50_vs_baseline: float = 0.0
    backend: str = "sqlite"
    processes: int = 1


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def load(
    port: int, paths: Sequence[str], *, concurrency: int, duration: float, warmup: float
) -> Result:
    requests = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n".encode() for p in paths]
    cycle = itertools.cycle(requests)
    latencies: list[float] = []
    errors = 0
    sizes = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker() -> None:
        nonlocal errors, sizes
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                try:
                    status, size = await _request(reader, writer, next(cycle))
                except (HTTPError, OSError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    latencies.append(t1 - t0)
                    sizes += size
                    if not 200 <= status < 300:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    n = len(latencies)
    return Result(
        name="",
        concurrency=concurrency,
        requests=n,
        errors=errors,
        rps=n / duration,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        mean_bytes=sizes // max(1, n),
    )


def scenarios(db_sources: Sequence[str], cursors: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(name, paths cycled through). The "uncached" ones rotate through more distinct views
    than the server's page cache holds (256), so every request renders from the store."""
    source = db_sources[0] if db_sources else "Slack"
    q = [f"/?q={quote(s)}" for s in QUERIES]
    rng = random.Random(5)
    pairs = [f"{a} {b}" for a, b in itertools.permutations(TOPICS, 2)]
    unique_queries = rng.sample(pairs, UNCACHED_VIEWS)
    return [
        ("/healthz (baseline)", ["/healthz"]),
        ("/ (home)", ["/"]),
        (f"/?source={source}", [f"/?source={quote(source)}"]),
        ("/?cursor=... (uncached)", [f"/?cursor={c}" for c in cursors]),
        ("/?q=... (search page)", q),
        ("/?q=... (uncached)", [f"/?q={quote(x)}" for x in unique_queries]),
        ("/api/articles", ["/api/articles"]),
        ("/api/articles?cursor= (uncached)", [f"/api/articles?cursor={c}" for c in cursors]),
        ("/api/search?q=...", [f"/api/search?q={quote(s)}" for s in QUERIES]),
    ]


#: The scenarios measured with more than one web process (throughput, not the page targets).
MULTI_PROCESS = ("baseline", "(home)", "/?q=... (uncached)", "/api/articles?cursor=")


def to_postgres(db: Path, url: str) -> None:
    """The bench store copied into the PostgreSQL database at ``url`` (once: a database that
    already holds the same number of articles is reused)."""
    from engfeed.store import Store
    from engfeed.store.copy import copy_store

    src, dest = Store(db), Store(url)
    if dest.count_articles() == src.count_articles():
        print(f"reusing {dest.location_shown} ({dest.count_articles():,} articles)")
    else:
        t0 = time.perf_counter()
        copy_store(
            src,
            dest,
            progress=lambda t, done, total: print(f"\r  copying {t}: {done:,}/{total:,}   ", end=""),
        )
        print(f"\r  copied to PostgreSQL in {time.perf_counter() - t0:.0f}s" + " " * 30)
    src.close_all()
    dest.close_all()


def page_cursors(db: Path, n: int) -> list[str]:
    """The cursors of the first ``n`` pages of the home listing (30 per page)."""
    from engfeed.feed import Feed
    from engfeed.store import Store

    feed = Feed(Store(db), embedder=None)
    out: list[str] = []
    cursor: str | None = None
    while len(out) < n:
        _, cursor = feed.articles_page(limit=30, cursor=cursor)
        if cursor is None:
            break
        out.append(cursor)
    feed.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--articles", type=int, default=100_000)
    p.add_argument("--db", type=Path, default=None, help="store to use (default bench/results/web-<n>.db)")
    p.add_argument("--vectors", action="store_true", help="store synthetic vectors; serve with embeddings on")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (max 60)")
    p.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds before each run (max 30)")
    p.add_argument("--concurrency", default="1,8", help="comma-separated connection counts (each <= 64)")
    p.add_argument("--only", default="", help="run only scenarios whose name contains this")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--database-url", default="", help="also run on this PostgreSQL database (copied in)")
    p.add_argument("--workers", default="1", help="comma-separated web process counts (serve --workers)")
    args = p.parse_args(argv)
    duration = min(max(args.duration, 0.5), 60.0)
    warmup = min(max(args.warmup, 0.0), 30.0)
    levels = [min(64, max(1, int(c))) for c in args.concurrency.split(",") if c.strip()]

    RESULTS.mkdir(parents=True, exist_ok=True)
    db = args.db or RESULTS / f"web-{args.articles // 1000}k.db"  # vectors are ignored with embeddings off
    build_store(db, args.articles, vectors=args.vectors)

    from engfeed.store import Store

    store = Store(db)
    top_sources = [name for name, _ in store.source_counts()]
    total = store.count_articles()
    store.close()

    cursors = page_cursors(db, UNCACHED_VIEWS)
    targets: list[tuple[str, Path | str]] = [("sqlite", db)]
    if args.database_url:
        to_postgres(db, args.database_url)
        targets.append(("postgresql", args.database_url))
    process_counts = [max(1, int(w)) for w in args.workers.split(",") if w.strip()]
    results: list[Result] = []
    for backend, location in targets:
        for procs in process_counts:
            port = free_port()
            with server(location, port, embed=args.vectors, workers=procs):
                # one slow-path request first (loads the search index) outside any measurement
                warm = [f"/?q={quote(q)}" for q in QUERIES[: 4 * procs]]
                asyncio.run(load(port, warm, concurrency=procs, duration=0.5 * procs, warmup=0.0))
                for name, paths in scenarios(top_sources, cursors):
                    if args.only and args.only not in name and "baseline" not in name:
                        continue
                    if procs > 1 and not any(key in name for key in MULTI_PROCESS):
                        continue
                    for level in levels if procs == 1 else [max(levels)]:
                        res = asyncio.run(
                            load(port, paths, concurrency=level, duration=duration, warmup=warmup)
                        )
                        res.name, res.backend, res.processes = name, backend, procs
                        results.append(res)
                        print(
                            f"  {backend:<10} x{procs} {name:<24} c={level:<3} {res.rps:8.0f} req/s  "
                            f"p50 {res.p50_ms:6.2f}  p95 {res.p95_ms:6.2f}  p99 {res.p99_ms:6.2f} ms"
                            f"  ({res.errors} errors)",
                            flush=True,
                        )
    baseline = {(r.backend, r.processes, r.concurrency): r for r in results if "baseline" in r.name}
    for r in results:
        b = baseline.get((r.backend, r.processes, r.concurrency))
        if b and b.rps and b.p50_ms:
            r.rps_vs_baseline = r.rps / b.rps
            r.p50_vs_baseline = r.p50_ms / b.p50_ms

    print()
    embed = "on" if args.vectors else "off"
    print(f"Engineering Feed web bench: {total:,} articles, embeddings {embed}, {duration:g}s runs")
    print(f"after {warmup:g}s warm-up, {os.cpu_count()} CPUs, loopback")
    print()
    print(
        "| backend | procs | endpoint | conns | req/s | p50 ms | p95 ms | p99 ms | req/s vs base"
        " | p50 vs base | errors |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.backend} | {r.processes} | `{r.name}` | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f}"
            f" | {r.p95_ms:.2f}"
            f"| {r.p99_ms:.2f} | {r.rps_vs_baseline:.2f}x | {r.p50_vs_baseline:.1f}x | {r.errors} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "articles": total,
            "embeddings": args.vectors,
            "duration_s": duration,
            "warmup_s": warmup,
            "cpus": os.cpu_count(),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    bad = sum(r.errors for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
