"""Ingest throughput, and the time until an import is fully concept-searchable.

Default: parse + store (embeddings and angles excluded) against feedparser alone. Both sides
read the same bytes, already in memory, in the same run, so the ratio is meaningful on a
noisy shared machine. Target: the whole pipeline within 1.5x of feedparser.

``--index``: ``engfeed import`` of the shared corpus in a fresh store, as a user runs it
(a new process: model loading, parse, store, FTS, document and passage embeddings, angles),
against lemon24/reader 3.26 on the same files in the same run (``update_feeds`` then
``update_search``: its ingest plus its full-text index). reader runs from a scratch virtual
environment under ``bench/results/reader-venv`` (created on first use from the package
index; never an engfeed dependency) through ``bench/baselines/reader_index.py``. Also
``engfeed import`` with ``ENGFEED_EMBED=0`` (keyword search only). Target (issue #13): the
full import within 3x of reader's ingest + FTS. Each side's peak RSS is reported too.

    python bench/ingest.py [--repeat 3] [--corpus DIR ...]
    python bench/ingest.py --index [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import feedparser

from engfeed.naming import short_name
from engfeed.parse import ParseError, parse_feed
from engfeed.store import Store

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SUFFIXES = {".xml", ".rss", ".atom", ".rdf", ".json"}
READER_VENV = ROOT / "bench" / "results" / "reader-venv"
#: reader's vendored feedparser imports sgmllib, which Python 3 does not ship.
READER_REQUIREMENTS = ["reader==3.26", "sgmllib3k"]


def load(corpus: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(corpus.rglob("*")) if p.is_file() and p.suffix in SUFFIXES]


def feedparser_alone(docs: list[bytes]) -> tuple[float, int]:
    started = time.perf_counter()
    entries = sum(len(feedparser.parse(d).entries) for d in docs)
    return time.perf_counter() - started, entries


def pipeline(docs: list[bytes], db: Path) -> tuple[float, int]:
    store = Store(db)
    started = time.perf_counter()
    stored = 0
    for doc in docs:
        try:
            parsed = parse_feed(doc)
        except ParseError:
            continue
        name = short_name(parsed.title, parsed.link, fallback="unknown")
        with store.transaction() as tx:
            written = store.upsert_articles(
                [replace(a, source=name) for a in parsed.articles], source_id=None, conn=tx
            )
        stored += len(written.new) + len(written.updated) + written.unchanged
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed, stored


def reader_python() -> Path:
    """The scratch venv's interpreter, with reader installed (created on first use)."""
    python = READER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {READER_VENV} with {' '.join(READER_REQUIREMENTS)}...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(READER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *READER_REQUIREMENTS], check=True)
    return python


def timed(
    cmd: list[str], env: dict[str, str] | None = None, probe: Path | None = None
) -> tuple[float, float, str, float | None]:
    """Run ``cmd``; its wall time in s, its peak RSS in MB, its stdout, and, with ``probe``
    (the store it writes), when every article first had its document vector and angles."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    milestone: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while probe is not None and not stop.wait(0.2):
            if concept_searchable(probe):
                milestone.append(time.perf_counter() - started)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    stop.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024, out, (milestone[0] if milestone else None)


def concept_searchable(db: Path) -> bool:
    """Every stored article has a document vector and its angles (passages may be pending).

    ``engfeed import`` embeds only after every file is stored, so this cannot hold early."""
    if not db.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            row = conn.execute(
                "SELECT count(*), count(e.article_id), sum(a.angles_sig IS NULL)"
                " FROM articles a LEFT JOIN embeddings e ON e.article_id = a.id"
            ).fetchone()
    except sqlite3.Error:  # not created yet, or mid-migration
        return False
    return bool(row[0]) and row[0] == row[1] and not row[2]


def index_build(corpora: list[Path], repeat: int) -> None:
    python = reader_python()
    script = ROOT / "bench" / "baselines" / "reader_index.py"
    engfeed = [sys.executable, "-m", "engfeed"]
    rows: dict[str, list[tuple[float, float]]] = {"reader": [], "keyword": [], "concept": [], "full": []}
    detail: dict[str, float] = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            wall, rss, out, _ = timed(
                [str(python), str(script), str(SHARED), f"{tmp}/reader.db", *map(str, corpora)]
            )
            got = json.loads(out)
            detail = {"ingest": got["ingest_s"], "fts": got["search_s"], "entries": got["entries"]}
            rows["reader"].append((got["ingest_s"] + got["search_s"], rss))
            for name, embed in (("keyword", "0"), ("full", "1")):
                env = {**os.environ, "ENGFEED_EMBED": embed}
                db = Path(tmp) / f"{name}.db"
                cmd = [*engfeed, "--db", str(db), "import", *map(str, corpora)]
                wall, rss, _, reached = timed(cmd, env, probe=db if name == "full" else None)
                rows[name].append((wall, rss))
                if reached is not None:
                    rows["concept"].append((reached, rss))
    base = statistics.median(t for t, _ in rows["reader"])
    print(
        f"reader 3.26: ingest {detail['ingest']:.1f} s + FTS {detail['fts']:.1f} s,"
        f" {detail['entries']:.0f} entries"
    )
    print(f"{'until searchable':<36} {'seconds':>8} {'x reader':>9} {'peak RSS MB':>12}")
    labels = {
        "reader": "reader (update_feeds + update_search)",
        "keyword": "engfeed import, ENGFEED_EMBED=0",
        "concept": "engfeed: all concept-searchable",
        "full": "engfeed import, passages included",
    }
    for name, samples in rows.items():
        if not samples:
            continue
        t = statistics.median(s for s, _ in samples)
        rss = max(r for _, r in samples)
        print(f"{labels[name]:<36} {t:>8.1f} {t / base:>8.2f}x {rss:>12.0f}")
    print(
        f"(median of {repeat}; target: within 3x of reader, passages included. Concept-searchable:"
        " every article has its document vector and angles, polled every 0.2 s; passages fill in after)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=None, help="runs per side (default 3; 1 with --index)")
    ap.add_argument("--corpus", action="append", type=Path)
    ap.add_argument("--index", action="store_true", help="time until fully concept-searchable vs reader")
    args = ap.parse_args()
    corpora = args.corpus or [SHARED / "feeds", SHARED / "feeds-large"]
    if args.index:
        index_build(corpora, args.repeat or 1)
        return
    args.repeat = args.repeat or 3
    print(f"{'corpus':<14} {'entries':>8} {'feedparser art/s':>17} {'pipeline art/s':>15} {'ratio':>6}")
    for corpus in corpora:
        docs = load(corpus)
        fp_times, pipe_times = [], []
        entries = stored = 0
        for _ in range(args.repeat):
            gc.collect()
            t, entries = feedparser_alone(docs)
            fp_times.append(t)
            with tempfile.TemporaryDirectory() as tmp:
                gc.collect()
                t, stored = pipeline(docs, Path(tmp) / "bench.db")
                pipe_times.append(t)
        fp, pipe = statistics.median(fp_times), statistics.median(pipe_times)
        print(
            f"{corpus.name:<14} {entries:>8} {entries / fp:>17.0f} {stored / pipe:>15.0f}"
            f" {pipe / fp:>5.2f}x   (median of {args.repeat}; {len(docs)} files, {stored} stored)"
        )


if __name__ == "__main__":
    main()
