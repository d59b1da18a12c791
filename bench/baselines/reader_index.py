"""reader's side of ``bench/ingest.py --index``: ingest local feed files, then build its FTS.

Runs under a scratch virtual environment that has ``reader==3.26`` (``bench/ingest.py``
creates it; reader is never an engfeed dependency) and must not import engfeed.

    python reader_index.py ROOT DB DIR... -> one JSON line: ingest_s, search_s, entries, feeds
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from reader import make_reader

SUFFIXES = {".xml", ".rss", ".atom", ".rdf", ".json"}


def main(argv: list[str]) -> int:
    root, db, dirs = Path(argv[0]).resolve(), argv[1], [Path(d).resolve() for d in argv[2:]]
    files = [p for d in dirs for p in sorted(d.rglob("*")) if p.is_file() and p.suffix in SUFFIXES]
    reader = make_reader(db, feed_root=str(root))  # local files only, under ROOT
    for path in files:
        reader.add_feed("file:" + str(path.relative_to(root)))
    started = time.perf_counter()
    reader.update_feeds(workers=1)
    ingest = time.perf_counter() - started
    reader.enable_search()
    started = time.perf_counter()
    reader.update_search()
    search = time.perf_counter() - started
    entries = reader.get_entry_counts().total
    reader.close()
    print(json.dumps({"ingest_s": ingest, "search_s": search, "entries": entries, "feeds": len(files)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
