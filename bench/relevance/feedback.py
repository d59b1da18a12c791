"""Does the labeller learn from the reader? Feedback on the train split, measured on the test split.

    python bench/relevance/feedback.py            # table: before / after feedback, with intervals
    python bench/relevance/feedback.py --json

A simulated reader corrects every label they would see on the judged set's *train* articles
(``data/angle-set``): "not this angle" on each predicted angle the gold labels lack, and, in
the ``full`` variant, "add angle" for each gold angle the labeller missed. The held-out *test*
articles are then labelled again with that feedback (engfeed.angles_feedback: final on the
train articles themselves, examples for the test articles through their nearest neighbours)
and compared with the gold labels: micro precision, recall and F1, each with a 95% bootstrap
interval over articles, and the paired bootstrap interval of the F1 change. Timings: building
the feedback model and re-labelling the test split, in the same run.

The articles are embedded with the shipped MiniLM model into a temporary store (~30 s on 2
cores); nothing of the publishers' text is written outside it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from annotate import gold, micro, set_store  # noqa: E402

BOOTSTRAP = 2000
SEED = 20261204


def intervals(
    before: list[tuple[set[str], set[str]]], after: list[tuple[set[str], set[str]]]
) -> dict[str, tuple[float, float]]:
    """95% bootstrap intervals (articles resampled, the same draw for both) of each figure."""
    rng = random.Random(SEED)
    n = len(before)
    samples: dict[str, list[float]] = {k: [] for k in ("p0", "r0", "f0", "p1", "r1", "f1", "df1")}
    for _ in range(BOOTSTRAP):
        idx = [rng.randrange(n) for _ in range(n)]
        p0, r0, f0 = micro([before[i] for i in idx])
        p1, r1, f1 = micro([after[i] for i in idx])
        for key, value in zip(samples, (p0, r0, f0, p1, r1, f1, f1 - f0), strict=True):
            samples[key].append(value)
    out: dict[str, tuple[float, float]] = {}
    for key, values in samples.items():
        values.sort()
        out[key] = (values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1])
    return out


def run(variant: str) -> dict[str, Any]:
    labels = gold()
    with set_store() as (feed, drawn, chosen):
        stored = {a["uid"]: feed.store.article(a["uid"]) for a in drawn if a["uid"] in chosen}
        ids = {a["n"]: stored[a["uid"]].id for a in drawn if stored.get(a["uid"]) is not None}

        def predicted(split: str) -> dict[int, set[str]]:
            found = feed.store.articles_by_ids(
                [ids[a["n"]] for a in drawn if a["split"] == split and a["n"] in ids]
            )
            return {
                a["n"]: {m.name for m in found[ids[a["n"]]].angles}
                for a in drawn
                if a["split"] == split and a["n"] in ids and ids[a["n"]] in found
            }

        test_before = predicted("test")
        train_before = predicted("train")
        verdicts: list[tuple[int, str, int]] = []
        for n, shown in train_before.items():
            verdicts += [(ids[n], name, -1) for name in shown - labels[n]]
            if variant == "full":
                verdicts += [(ids[n], name, 1) for name in labels[n] - shown]
        feed.store.feedback.set_many(verdicts, now=datetime.now(UTC))
        started = time.perf_counter()
        feed.reload_feedback()
        trained = time.perf_counter() - started
        labeler = feed.labeler
        test_ids = [ids[n] for n in test_before]
        started = time.perf_counter()
        labeler.label_ids(feed.store, test_ids, feed.embedder.name if feed.embedder else None)
        relabel = time.perf_counter() - started
        test_after = predicted("test")
    order = sorted(test_before)
    before = [(test_before[n], labels[n]) for n in order]
    after = [(test_after[n], labels[n]) for n in order]
    ci = intervals(before, after)
    p0, r0, f0 = micro(before)
    p1, r1, f1 = micro(after)
    return {
        "variant": variant,
        "train_verdicts": {
            "no": sum(1 for v in verdicts if v[2] < 0),
            "yes": sum(1 for v in verdicts if v[2] > 0),
        },
        "test_articles": len(order),
        "before": {"precision": p0, "recall": r0, "f1": f0, "ci": {k: ci[k] for k in ("p0", "r0", "f0")}},
        "after": {"precision": p1, "recall": r1, "f1": f1, "ci": {k: ci[k] for k in ("p1", "r1", "f1")}},
        "f1_change_ci": ci["df1"],
        "changed_articles": sum(1 for n in order if test_before[n] != test_after[n]),
        "seconds": {"train": trained, "relabel_test": relabel},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [run("no-only"), run("full")]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        b, a = r["before"], r["after"]
        print(
            f"-- feedback on train ({r['variant']}: {r['train_verdicts']['no']} 'not this angle',"
            f" {r['train_verdicts']['yes']} 'add angle'); test split, {r['test_articles']} articles"
        )
        for label, m, keys in (("before", b, ("p0", "r0", "f0")), ("after", a, ("p1", "r1", "f1"))):
            ci = m["ci"]
            print(
                f"  {label:<7} P {m['precision']:.2f} [{ci[keys[0]][0]:.2f}, {ci[keys[0]][1]:.2f}]"
                f"  R {m['recall']:.2f} [{ci[keys[1]][0]:.2f}, {ci[keys[1]][1]:.2f}]"
                f"  F1 {m['f1']:.2f} [{ci[keys[2]][0]:.2f}, {ci[keys[2]][1]:.2f}]"
            )
        lo, hi = r["f1_change_ci"]
        secs = r["seconds"]
        print(
            f"  F1 change {a['f1'] - b['f1']:+.3f} (95% paired bootstrap {lo:+.3f} .. {hi:+.3f});"
            f" {r['changed_articles']} test articles changed; model built in {secs['train'] * 1000:.1f} ms,"
            f" test split re-labelled in {secs['relabel_test']:.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
