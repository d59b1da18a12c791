"""Deepen the judgement pools: write the unjudged top-k of every mode out for judging.

    python bench/relevance/pool.py --depth 10 --batches 6     # write batches to judge
    python bench/relevance/pool.py --merge                     # fold the judged batches in

Pooling (as TREC does it): the union of the top ``depth`` articles of BM25, dense and
hybrid for each query, minus what is judged already, is judged by hand. Candidates are
shuffled per query so a judge cannot tell which system found them. Batches are written
to ``bench/results/relevance/pool/`` (git-ignored: they quote article text, which
belongs to its publishers); a judge writes ``batch-N.judged.json`` next to each batch:
``[{"query": "q01", "n": 3, "grade": 2}, ...]``. ``--merge`` adds those grades to
``data/queries.json`` (URL and title only, tagged ``"pool": N`` with ``--round N``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DATA, DEFAULT_DB, MODES, load_queries, open_corpus

POOL_DIR = DEFAULT_DB.parent / "pool"
GUIDE = """\
Grade each candidate for its query, as the team graded the first pool:

* 2 = squarely about the query's concept (a reader who typed the query wants this post);
* 1 = partly relevant / useful context (touches the concept, or covers it as one part);
* 0 = not relevant (including posts that share surface words but not the concept).

Judge the concept, not the words: "keeping services up when a region fails" is about
multi-region failover and resilience even when a post never says "region fails". Judge
only from the text shown; title-only entries are graded only if the title is unambiguous,
otherwise 0. Be strict: when in doubt between two grades, take the lower.
"""


def write_batches(depth: int, batches: int, text_chars: int) -> None:
    store, engine = open_corpus(DEFAULT_DB)
    queries = load_queries(store)
    POOL_DIR.mkdir(parents=True, exist_ok=True)
    for old in POOL_DIR.glob("batch-*"):
        old.unlink()
    per_query: list[tuple[Any, list[int]]] = []
    for q in queries:
        pool: list[int] = []
        for mode in MODES:
            for aid, _, _ in engine.rank(q.text, limit=depth, mode=mode):
                if aid not in q.grades and aid not in pool:
                    pool.append(aid)
        random.Random(q.id).shuffle(pool)
        per_query.append((q, pool))
    index: dict[str, dict[str, dict[str, str]]] = {}
    total = sum(len(p) for _, p in per_query)
    groups: list[list[tuple[Any, list[int]]]] = [[] for _ in range(batches)]
    sizes = [0] * batches
    for item in sorted(per_query, key=lambda qp: -len(qp[1])):
        i = sizes.index(min(sizes))
        groups[i].append(item)
        sizes[i] += len(item[1])
    for b, group in enumerate(groups, 1):
        lines = [f"# Judging batch {b}", "", GUIDE]
        for q, pool in sorted(group, key=lambda qp: qp[0].id):
            arts = store.articles_by_ids(pool, full=True)
            lines += ["", f"## {q.id}: {q.text}", ""]
            index[q.id] = {}
            for n, aid in enumerate(pool, 1):
                a = arts[aid]
                body = " ".join((a.text or a.excerpt).split())[:text_chars]
                lines.append(f"### {q.id} [{n}] {a.title}  ({a.source})")
                lines.append(body or "(title only)")
                lines.append("")
                index[q.id][str(n)] = {"url": a.url, "title": a.title}
        (POOL_DIR / f"batch-{b}.md").write_text("\n".join(lines), encoding="utf-8")
    (POOL_DIR / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    print(f"{total} candidates over {len(queries)} queries in {batches} batches: {sizes}")


def merge(round_no: int) -> None:
    index = json.loads((POOL_DIR / "index.json").read_text(encoding="utf-8"))
    path = DATA / "queries.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    by_id = {q["id"]: q for q in data["queries"]}
    added = 0
    for judged in sorted(POOL_DIR.glob("batch-*.judged.json")):
        for j in json.loads(judged.read_text(encoding="utf-8")):
            ref = index[j["query"]][str(j["n"])]
            grade = int(j["grade"])
            if grade not in (0, 1, 2):
                raise SystemExit(f"{judged.name}: bad grade {grade!r}")
            q = by_id[j["query"]]
            if any(x["url"] == ref["url"] for x in q["judgements"]):
                continue
            entry = {"url": ref["url"], "title": ref["title"], "grade": grade, "pool": round_no}
            q["judgements"].append(entry)
            added += 1
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"merged {added} judgements into {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--text-chars", type=int, default=900)
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--round", type=int, default=2, help="tag of merged judgements (default %(default)s)")
    args = ap.parse_args()
    if args.merge:
        merge(args.round)
    else:
        write_batches(args.depth, args.batches, args.text_chars)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
