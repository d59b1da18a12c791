"""Full-text throughput: ``Feed.fetch_text`` over real article pages served from 127.0.0.1.

    .venv/bin/python bench/fulltext.py                 # 200 pages on 4 hosts, 3 repeats
    .venv/bin/python bench/fulltext.py --pages 400 --hosts 1 --repeat 5 --json

What it does:

1. Builds ``--pages`` article pages from real articles in ``../shared`` (every feed file,
   articles of at least 300 words, in a fixed order), each wrapped in the real-world
   boilerplate of ``tests/test_extract.py`` (navigation, cookie banner, share bars, related
   posts, comments, newsletter box, footer; the page sizes are reported). Nothing is copied
   into the repository: pages and stores live in ``bench/results/fulltext-work/`` (git-ignored)
   during the run and are removed after it.
2. Serves them from ``--hosts`` static servers on 127.0.0.1, 127.0.0.2, ... (a thread per
   request; ``robots.txt`` answers 404, so everything is allowed): pages are spread over the
   hosts the way a refresh spreads over blogs, and one host is fetched one page at a time.
3. Measures, in the same run, each in a fresh child process (so each peak RSS is its own):

   * ``fetch``: the raw fetch of the same URLs through ``engfeed.fetch.fetch_one`` with the
     page settings (``engfeed.fulltext.page_config``: one request per host): the network
     side alone, no robots.txt, no extraction, no store;
   * ``trafilatura``: ``trafilatura.extract`` alone on the same bytes, same options;
   * ``extract_page``: our extraction on the bytes (charset, element cap, trafilatura,
     sanitiser, caps);
   * ``fetch_text``: ``Feed.fetch_text(missing=True)`` end to end on a store holding the
     teaser articles: robots.txt, fetch, extraction on the worker thread, storage,
     re-labelling of the changed articles (embedding off).

   trafilatura is imported before the clock starts in every child (its import costs ~0.3 s).
4. Reports pages/s (median of ``--repeat`` runs), peak RSS per child (``VmHWM``), and the
   ratios that stay put on a noisy machine: ``fetch_text`` against the sum of its two
   essential parts run one after the other (``fetch`` + ``trafilatura``), ``extract_page``
   against ``trafilatura``, and peak RSS against the ``trafilatura`` child. Results go to
   ``bench/results/fulltext.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(1, str(ROOT / "tests"))

SHARED = Path(os.environ.get("ENGFEED_SHARED", ROOT.parent / "shared"))
RESULTS = ROOT / "bench" / "results"
WORK = RESULTS / "fulltext-work"
MODES = ("fetch", "trafilatura", "extract_page", "fetch_text")
MIN_WORDS = 300

TRAFILATURA_OPTIONS: dict[str, Any] = {
    "output_format": "html",
    "include_comments": False,
    "include_tables": True,
    "include_images": True,
    "include_formatting": True,
    "include_links": True,
    "with_metadata": False,
}


# -- the pages and their servers (parent process) ------------------------------------------------
def build_pages(n: int) -> list[tuple[str, bytes]]:
    """``n`` (title, page bytes) from real articles, cycling through them if there are fewer."""
    from engfeed.parse import ParseError, parse_feed
    from test_extract import article_page, body_html

    articles = []
    for path in sorted([*SHARED.glob("feeds/*.xml"), *SHARED.glob("feeds-large/recent-*.xml")]):
        try:
            parsed = parse_feed(path.read_bytes())
        except ParseError:
            continue
        articles += [a for a in parsed.articles if len(a.text.split()) >= MIN_WORDS and body_html(a)]
    if not articles:
        raise SystemExit(f"no articles found under {SHARED}")
    return [
        (a.title, article_page(a.title, body_html(a)))
        for a in (articles[i % len(articles)] for i in range(n))
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pages: ClassVar[dict[str, bytes]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body in one segment, sent at once: without this, Nagle's algorithm and
        # the client's delayed ACK stall each keep-alive response by up to 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        body = self.pages.get(self.path)
        status = "200 OK" if body is not None else "404 Not Found"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body or b'')}\r\n\r\n"
        )
        self.wfile.write(head.encode() + (body or b""))


def serve(hosts: int, pages: dict[str, bytes]) -> list[ThreadingHTTPServer]:
    _Handler.pages = pages
    servers = []
    for i in range(hosts):
        server = ThreadingHTTPServer((f"127.0.0.{i + 1}", 0), _Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
    return servers


def teaser_feed(urls: list[str], titles: list[str]) -> bytes:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{escape(url)}</link><guid>{escape(url)}</guid>"
        f"<pubDate>{format_datetime(start - timedelta(hours=i))}</pubDate>"
        "<description>A short teaser of the article, as many feeds carry.</description></item>"
        for i, (url, title) in enumerate(zip(urls, titles, strict=True))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Bench</title>'
        f"<link>http://127.0.0.1/</link><description>d</description>{items}</channel></rss>"
    ).encode()


# -- one measurement (child process) ------------------------------------------------------------------
def child(mode: str, work: Path) -> dict[str, Any]:
    import trafilatura  # warm: the import is not what is measured

    spec = json.loads((work / "spec.json").read_text())
    urls: list[str] = spec["urls"]
    if mode in ("trafilatura", "extract_page"):
        bodies = [(work / "pages" / f"{i}.html").read_bytes() for i in range(len(urls))]
        if mode == "trafilatura":
            from engfeed.extract import _settings

            settings = _settings()
            started = time.perf_counter()
            ok = sum(
                1
                for url, body in zip(urls, bodies, strict=True)
                if trafilatura.extract(body, url=url, config=settings, **TRAFILATURA_OPTIONS)
            )
        else:
            from engfeed.extract import extract_page

            started = time.perf_counter()
            ok = sum(
                1
                for url, body in zip(urls, bodies, strict=True)
                if extract_page(body, url=url, content_type="text/html; charset=utf-8").status == "ok"
            )
        seconds = time.perf_counter() - started
    elif mode == "fetch":
        from engfeed.fetch import FetchConfig, fetch_one, make_client
        from engfeed.fulltext import page_config
        from engfeed.models import Source

        cfg = page_config(FetchConfig())

        async def fetch_all() -> int:
            async with make_client(cfg) as client:
                results = await asyncio.gather(
                    *(fetch_one(client, Source(name=str(i), url=u), cfg) for i, u in enumerate(urls))
                )
            return sum(1 for r in results if r.body)

        started = time.perf_counter()
        ok = asyncio.run(fetch_all())
        seconds = time.perf_counter() - started
    else:
        from engfeed.feed import Feed
        from engfeed.fetch import FetchConfig
        from engfeed.store import Store

        feed = Feed(Store(work / f"bench-{os.getpid()}.db"), fetch_config=FetchConfig(), fulltext=False)
        feed.import_paths([work / "teasers.xml"], source="Bench")
        feed.index_pending()
        started = time.perf_counter()
        report = feed.fetch_text(missing=True, limit=len(urls))
        seconds = time.perf_counter() - started
        ok = report.count("ok")
        feed.close()
    status = Path("/proc/self/status").read_text() if Path("/proc/self/status").is_file() else ""
    found = re.search(r"VmHWM:\s*(\d+)", status)
    return {
        "mode": mode,
        "seconds": seconds,
        "pages": len(urls),
        "ok": ok,
        "peak_mb": int(found.group(1)) / 1024 if found else None,
    }


def run_child(mode: str) -> dict[str, Any]:
    env = {**os.environ, "ENGFEED_EMBED": "0", "ENGFEED_FULLTEXT": "0", "PYTHONPATH": str(ROOT / "src")}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--hosts", type=int, default=4, help="servers on 127.0.0.1, 127.0.0.2, ...")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, WORK)))
        return

    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "pages").mkdir(parents=True)
    built = build_pages(args.pages)
    paths = {f"/post/{i}": body for i, (_, body) in enumerate(built)}
    servers = serve(max(1, args.hosts), paths)
    urls = [
        f"http://127.0.0.{i % len(servers) + 1}:{servers[i % len(servers)].server_address[1]}/post/{i}"
        for i in range(len(built))
    ]
    for i, (_, body) in enumerate(built):
        (WORK / "pages" / f"{i}.html").write_bytes(body)
    (WORK / "teasers.xml").write_bytes(teaser_feed(urls, [t for t, _ in built]))
    (WORK / "spec.json").write_text(json.dumps({"urls": urls}))
    sizes = sorted(len(b) for _, b in built)

    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(args.repeat):
        for mode in MODES:  # interleaved, so drift on a shared machine hits every mode alike
            runs[mode].append(run_child(mode))
    for server in servers:
        server.shutdown()
    shutil.rmtree(WORK, ignore_errors=True)  # the pages hold publishers' text: not kept

    summary: dict[str, dict[str, float | int | None]] = {}
    for mode, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        peaks = [r["peak_mb"] for r in results if r["peak_mb"] is not None]
        summary[mode] = {
            "seconds": round(seconds, 3),
            "pages_per_s": round(len(built) / seconds, 1),
            "ok": min(r["ok"] for r in results),
            "peak_rss_mb": round(max(peaks), 1) if peaks else None,
        }
    serial = summary["fetch"]["seconds"] + summary["trafilatura"]["seconds"]  # type: ignore[operator]
    base_rss = summary["trafilatura"]["peak_rss_mb"]
    ratios = {
        "fetch_text / (fetch + trafilatura), time": round(summary["fetch_text"]["seconds"] / serial, 2),  # type: ignore[operator]
        "extract_page / trafilatura, time": round(
            summary["extract_page"]["seconds"] / summary["trafilatura"]["seconds"],
            2,  # type: ignore[operator]
        ),
        "fetch_text / trafilatura, peak RSS": round(summary["fetch_text"]["peak_rss_mb"] / base_rss, 2)  # type: ignore[operator]
        if base_rss
        else None,
    }
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "pages": len(built),
        "hosts": len(servers),
        "repeat": args.repeat,
        "page_kb": {"median": round(sizes[len(sizes) // 2] / 1024, 1), "max": round(sizes[-1] / 1024, 1)},
        "cpus": os.cpu_count(),
        "modes": summary,
        "ratios": ratios,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fulltext.json").write_text(json.dumps(out, indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{len(built)} pages (median {out['page_kb']['median']} KB, max {out['page_kb']['max']} KB) "  # type: ignore[index]
        f"on {len(servers)} host(s), median of {args.repeat} runs"
    )
    print(f"{'mode':<14} {'pages/s':>8} {'seconds':>8} {'ok':>5} {'peak RSS MB':>12}")
    for mode in MODES:
        row = summary[mode]
        rate, secs, ok, peak = row["pages_per_s"], row["seconds"], row["ok"], row["peak_rss_mb"]
        print(f"{mode:<14} {rate:>8} {secs:>8} {ok:>5} {peak!s:>12}")
    for name, value in ratios.items():
        print(f"{name}: {value}")
    print(f"results: {RESULTS / 'fulltext.json'}")


if __name__ == "__main__":
    main()
