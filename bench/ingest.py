"""Ingest throughput: parse + store (embeddings and angles excluded) against feedparser alone.

Both sides read the same bytes, already in memory, in the same run, so the ratio is
meaningful on a noisy shared machine. Target: the whole pipeline within 1.5x of feedparser.

    python bench/ingest.py [--repeat 3] [--corpus DIR ...]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import feedparser

from engfeed.naming import short_name
from engfeed.parse import ParseError, parse_feed
from engfeed.store import Store

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SUFFIXES = {".xml", ".rss", ".atom", ".rdf", ".json"}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--corpus", action="append", type=Path)
    args = ap.parse_args()
    corpora = args.corpus or [SHARED / "feeds", SHARED / "feeds-large"]
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
