"""The angle judged set: draw it, show it to annotators, measure their agreement.

    python bench/relevance/annotate.py draw                 # (once) data/angle-set/articles.json
    python bench/relevance/annotate.py show 1 50            # articles 1..50 as annotators see them
    python bench/relevance/annotate.py draw-extra           # (once) the extra training set, #10001..
    python bench/relevance/annotate.py merge-extra          # its labels, from the annotators' blocks
    python bench/relevance/annotate.py guidelines           # what annotators read first
    python bench/relevance/annotate.py agreement            # kappa and pairwise F1 of passes A and B
    python bench/relevance/annotate.py baseline             # the bundled labeller against the gold labels
    python bench/relevance/annotate.py evaluate [--split train|test]  # with intervals, keyword rule, ceiling

Protocol (see ../README.md): 600 articles drawn at random from the shared corpus, stratified by
company (proportional allocation, at least one per company; seeded). Each is labelled by two
independent passes, A and B, that see only the guidelines (the bundled ``angles.toml``'s
general rules and per-angle ``guideline``) and the article as shown here (title, company,
and the text the feed carried, up to 1,500 words), never each other's labels; a third pass
adjudicates the articles where they disagree. A third of the set, chosen by a hash of the
article id (stratified by company), is the held-out ``test`` split: never tuned on.

Article text belongs to its publishers: the set stores ids, URLs and titles only; ``show``
reads the text from ``../shared`` (a cache of the drawn articles' text goes to
``bench/results/``, git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from engfeed.angles import load_angles  # noqa: E402
from engfeed.models import Article  # noqa: E402
from engfeed.parse import parse_feed  # noqa: E402
from engfeed.urls import article_uid, dedup_key  # noqa: E402

SHARED = Path(os.environ.get("ENGFEED_SHARED", ROOT.parent / "shared"))
SET = Path(__file__).resolve().parent / "data" / "angle-set"
CACHE = ROOT / "bench" / "results" / "angle-set-text.json"
SIZE = 600
SEED = 20261130
EXTRA_SIZE = 900  # the extra training set: half with >= EXTRA_WORDS words of text, half any
EXTRA_WORDS = 60
EXTRA_SEED = 20261204
MAX_WORDS = 1500
GENERAL_RULES = """General rules (every angle):
- Give 0, 1 or 2 angles. An angle is given only when the article clearly supports it, and a reader with
  that interest would clearly agree that the article serves it. When in doubt, leave it out.
- Product announcements, pricing and launch posts, event recaps, hiring and culture posts, and marketing
  get none. The exception is an announcement whose text carries real technical substance for an angle:
  a section explaining how the thing works, or before/after measurements.
- Titles alone: when the feed carries only a title or a generic teaser, the title counts only if it
  names the mechanism or the outcome. "How we made FastText faster" -> systems performance. "Scaling
  merge-ort across GitHub" -> none without more text.
- Read the whole text you have. Full text, when present, decides over the lead paragraph.
- More than two fit: keep the two the article spends most of its words on; on a tie, use the order of
  the angles below."""


def corpus() -> dict[str, dict[str, Any]]:
    """Every distinct article of the shared corpus, by public id."""
    found: dict[str, dict[str, Any]] = {}
    files = sorted((SHARED / "feeds").glob("*.xml")) + sorted((SHARED / "feeds-large").glob("*.xml"))
    for path in files:
        try:
            parsed = parse_feed(path.read_bytes(), url="")
        except Exception:  # a broken snapshot is skipped, as import does
            continue
        company = parsed.title or path.stem
        for art in parsed.articles:
            uid = article_uid(dedup_key(art.url)) if art.url else art.uid
            found.setdefault(
                uid,
                {"uid": uid, "url": art.url, "title": art.title, "company": company,
                 "feed": str(path.relative_to(SHARED)), "text": art.text},
            )  # fmt: skip
    return found


def draw() -> None:
    articles = corpus()
    rnd = random.Random(SEED)
    chosen = _stratified(list(articles.values()), SIZE, rnd)
    total = len(articles)
    companies = len({a["company"] for a in articles.values()})
    rnd.shuffle(chosen)
    out = []
    for number, art in enumerate(chosen, 1):
        digest = int(hashlib.sha256(art["uid"].encode()).hexdigest(), 16)
        out.append({
            "n": number, "uid": art["uid"], "url": art["url"], "title": art["title"],
            "company": art["company"], "feed": art["feed"],
            "split": "test" if digest % 3 == 0 else "train",
        })  # fmt: skip
    SET.mkdir(parents=True, exist_ok=True)
    meta = {"size": len(out), "seed": SEED, "corpus_articles": total, "companies": companies}
    (SET / "articles.json").write_text(
        json.dumps({"about": meta, "articles": out}, indent=1, ensure_ascii=False)
    )
    print(f"drew {len(out)} of {total} articles from {companies} companies;",
          Counter(a["split"] for a in out))  # fmt: skip


def _stratified(pool: list[dict[str, Any]], size: int, rnd: random.Random) -> list[dict[str, Any]]:
    """``size`` articles of ``pool`` drawn by company, proportional allocation, at least one each."""
    by_company: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for art in sorted(pool, key=lambda a: a["uid"]):
        by_company[art["company"]].append(art)
    quota = {c: max(1, round(size * len(v) / len(pool))) for c, v in by_company.items()}
    while sum(quota.values()) > size:
        biggest = max(quota, key=lambda c: (quota[c], c))
        quota[biggest] -= 1
    while sum(quota.values()) < size:
        biggest = max(quota, key=lambda c: (len(by_company[c]) - quota[c], c))
        quota[biggest] += 1
    chosen: list[dict[str, Any]] = []
    for company in sorted(by_company):
        chosen += rnd.sample(by_company[company], min(quota[company], len(by_company[company])))
    return chosen


def draw_extra() -> None:
    """An extra *training* set (single annotation pass, never test): EXTRA_SIZE articles not in
    the judged set nor in ``data/angles.json``, half of them among articles whose feed carried at
    least EXTRA_WORDS words (most gold angles are there, and they are 14% of the corpus), half
    among all, each half stratified by company. Numbered from 10001 so ids never clash."""
    articles = corpus()
    taken = {a["uid"] for a in json.loads((SET / "articles.json").read_text())["articles"]}
    old = json.loads((SET.parent / "angles.json").read_text())["articles"]
    old_urls = {a["url"] for a in old}
    pool = [a for a in articles.values() if a["uid"] not in taken and a["url"] not in old_urls]
    rnd = random.Random(EXTRA_SEED)
    texty = [a for a in pool if len(a["text"].split()) >= EXTRA_WORDS]
    first = _stratified(texty, EXTRA_SIZE // 2, rnd)
    firsts = {a["uid"] for a in first}
    rest = _stratified([a for a in pool if a["uid"] not in firsts], EXTRA_SIZE - len(first), rnd)
    chosen = first + rest
    rnd.shuffle(chosen)
    out = [
        {"n": 10001 + i, "uid": a["uid"], "url": a["url"], "title": a["title"], "company": a["company"],
         "feed": a["feed"], "split": "extra"}
        for i, a in enumerate(chosen)
    ]  # fmt: skip
    meta = {"size": len(out), "seed": EXTRA_SEED, "with_text": len(first), "min_words": EXTRA_WORDS}
    (SET / "extra-articles.json").write_text(
        json.dumps({"about": meta, "articles": out}, indent=1, ensure_ascii=False)
    )
    print(f"drew {len(out)} extra training articles ({len(first)} with >= {EXTRA_WORDS} words)")


def all_drawn() -> list[dict[str, Any]]:
    """The judged set's entries, then the extra training set's (when drawn)."""
    drawn: list[dict[str, Any]] = json.loads((SET / "articles.json").read_text())["articles"]
    if (SET / "extra-articles.json").is_file():
        drawn += json.loads((SET / "extra-articles.json").read_text())["articles"]
    return drawn


def merge_extra() -> None:
    """Merge the annotators' blocks (``bench/results/extra-labels-*.json``) into
    ``labels-extra.json``, checking names and that every drawn extra article has a label."""
    order = [a.name for a in load_angles(None)]
    names = set(order)
    merged: dict[str, list[str]] = {}
    for path in sorted((ROOT / "bench" / "results").glob("extra-labels-*.json")):
        for key, value in json.loads(path.read_text()).items():
            bad = set(value) - names
            if bad or len(value) > 2:
                raise SystemExit(f"{path.name}: #{key}: {sorted(bad) or value}")
            merged[str(int(key))] = sorted(value, key=order.index)
    drawn = json.loads((SET / "extra-articles.json").read_text())["articles"]
    missing = [a["n"] for a in drawn if str(a["n"]) not in merged]
    out = {str(a["n"]): merged[str(a["n"])] for a in drawn if str(a["n"]) in merged}
    (SET / "labels-extra.json").write_text(json.dumps(out, indent=0) + "\n")
    with_angle = sum(1 for v in out.values() if v)
    print(f"{len(out)} extra articles labelled ({with_angle} with an angle); {len(missing)} missing")


def texts() -> dict[str, str]:
    drawn = all_drawn()
    if CACHE.is_file():
        cached: dict[str, str] = json.loads(CACHE.read_text())
        if all(a["uid"] in cached for a in drawn):
            return cached
    articles = corpus()
    found = {a["uid"]: articles[a["uid"]]["text"] for a in drawn if a["uid"] in articles}
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps(found))
    return found


def show(first: int, last: int) -> None:
    drawn = all_drawn()
    text = texts()
    for art in drawn:
        if first <= art["n"] <= last:
            words = text.get(art["uid"], "").split()
            body = " ".join(words[:MAX_WORDS]) + (" [...]" if len(words) > MAX_WORDS else "")
            print(f"=== #{art['n']} [{art['company']}] {art['title']}")
            print(body or "(the feed carried no text: title only)")
            print()


def guidelines() -> None:
    print(GENERAL_RULES, "\n\nThe angles (in order):")
    for number, angle in enumerate(load_angles(None), 1):
        print(f"{number}. {angle.name}: {angle.guideline or angle.description}")


def _labels(name: str) -> dict[int, set[str]]:
    data = json.loads((SET / f"labels-{name}.json").read_text())
    return {int(k): set(v) for k, v in data.items()}


def agreement() -> None:
    a, b = _labels("A"), _labels("B")
    names = [x.name for x in load_angles(None)]
    ids = sorted(set(a) & set(b))
    print(f"{len(ids)} articles labelled by both passes")
    tp = fp = fn = 0
    for name in names:
        both = sum(1 for i in ids if name in a[i] and name in b[i])
        only_a = sum(1 for i in ids if name in a[i] and name not in b[i])
        only_b = sum(1 for i in ids if name not in a[i] and name in b[i])
        neither = len(ids) - both - only_a - only_b
        tp, fp, fn = tp + both, fp + only_b, fn + only_a
        n = len(ids)
        po = (both + neither) / n
        pa, pb = (both + only_a) / n, (both + only_b) / n
        pe = pa * pb + (1 - pa) * (1 - pb)
        kappa = (po - pe) / (1 - pe) if pe < 1 else 1.0
        f1 = 2 * both / (2 * both + only_a + only_b) if both + only_a + only_b else 1.0
        print(
            f"  {name:<38} A {both + only_a:>3}  B {both + only_b:>3}  both {both:>3}"
            f"  kappa {kappa:5.2f}  F1 {f1:4.2f}"
        )
    micro = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    with_a = sum(1 for i in ids if a[i]) / len(ids)
    with_b = sum(1 for i in ids if b[i]) / len(ids)
    print(f"micro F1 (A vs B) {micro:.3f}; articles with an angle: A {with_a:.1%}, B {with_b:.1%}")


def gold() -> dict[int, set[str]]:
    """Adjudicated labels: where passes A and B agree, theirs; elsewhere the third pass's."""
    a, b = _labels("A"), _labels("B")
    decided = (
        json.loads((SET / "adjudicated.json").read_text()) if (SET / "adjudicated.json").is_file() else {}
    )
    out: dict[int, set[str]] = {}
    for n in a:
        if str(n) in decided:
            out[n] = set(decided[str(n)]["angles"])
        else:  # agreed (or, before adjudication, what both passes gave)
            out[n] = a[n] & b[n]
    return out


def drawn_articles(*, extra: bool = False) -> tuple[list[dict[str, Any]], dict[str, Article]]:
    """The drawn set's entries (``extra``: then the extra training set's) and, by public id,
    their articles as parsed from ../shared."""
    drawn: list[dict[str, Any]] = (
        all_drawn() if extra else json.loads((SET / "articles.json").read_text())["articles"]
    )
    wanted = {a["uid"] for a in drawn}
    chosen: dict[str, Article] = {}
    for path in sorted((SHARED / "feeds").glob("*.xml")) + sorted((SHARED / "feeds-large").glob("*.xml")):
        try:
            parsed = parse_feed(path.read_bytes(), url="")
        except Exception:  # a broken snapshot is skipped, as import does
            continue
        for art in parsed.articles:
            uid = article_uid(dedup_key(art.url)) if art.url else art.uid
            if uid in wanted and uid not in chosen:
                chosen[uid] = art
    return drawn, chosen


@contextmanager
def set_store() -> Iterator[tuple[Any, list[dict[str, Any]], dict[str, Article]]]:
    """A temporary store of the drawn articles, embedded (MiniLM) and labelled by the bundled
    labeller: (the Feed, the drawn entries, their articles by public id)."""
    import tempfile

    from engfeed.feed import Feed

    drawn, chosen = drawn_articles()
    with tempfile.TemporaryDirectory() as tmp:
        feed = Feed.open(Path(tmp) / "set.db", embed=True)
        try:
            with feed.store.transaction() as tx:
                feed.store.upsert_articles(list(chosen.values()), source_id=None, conn=tx)
            feed.index_pending()
            yield feed, drawn, chosen
        finally:
            feed.close()


def baseline() -> None:
    """The bundled labeller (engfeed.angles, MiniLM) on the drawn articles, against the gold
    labels, per split: the number the new labeller has to beat."""
    labels = gold()
    with set_store() as (feed, drawn, chosen):
        predicted = {}
        for art in drawn:
            stored = feed.store.article(art["uid"]) if art["uid"] in chosen else None
            predicted[art["n"]] = {m.name for m in stored.angles} if stored else set()
    names = [x.name for x in load_angles(None)]
    for split in ("train", "test"):
        ids = [a["n"] for a in drawn if a["split"] == split]
        tp = fp = fn = 0
        print(f"-- {split} ({len(ids)} articles): bundled labeller vs gold")
        for name in names:
            t = sum(1 for i in ids if name in predicted[i] and name in labels[i])
            f_p = sum(1 for i in ids if name in predicted[i] and name not in labels[i])
            f_n = sum(1 for i in ids if name not in predicted[i] and name in labels[i])
            tp, fp, fn = tp + t, fp + f_p, fn + f_n
            print(f"  {name:<38} tp {t:>3} fp {f_p:>3} fn {f_n:>3}")
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        share_pred = sum(1 for i in ids if predicted[i]) / len(ids)
        share_gold = sum(1 for i in ids if labels[i]) / len(ids)
        print(
            f"  micro P {p:.2f} R {r:.2f} F1 {f1:.2f};"
            f" with an angle: labeller {share_pred:.1%}, gold {share_gold:.1%}"
        )


# -- the held-out evaluation (run.py prints it) ------------------------------------------------
BOOTSTRAP = 1000


def micro(pairs: list[tuple[set[str], set[str]]]) -> tuple[float, float, float]:
    """Micro precision, recall and F1 over (predicted, gold) label sets."""
    tp = sum(len(p & g) for p, g in pairs)
    fp = sum(len(p - g) for p, g in pairs)
    fn = sum(len(g - p) for p, g in pairs)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def bootstrap(pairs: list[tuple[set[str], set[str]]], seed: int = SEED) -> tuple[tuple[float, float], ...]:
    """95% intervals of micro (precision, recall, F1), articles resampled with replacement."""
    rng = random.Random(seed)
    draws = [micro([pairs[rng.randrange(len(pairs))] for _ in pairs]) for _ in range(BOOTSTRAP)]
    out = []
    for k in range(3):
        values = sorted(d[k] for d in draws)
        out.append((values[int(0.025 * BOOTSTRAP)], values[int(0.975 * BOOTSTRAP) - 1]))
    return tuple(out)


def evaluate_set(split: str = "test") -> dict[str, Any]:
    """The bundled labeller, the seed's keyword rule and the annotators' agreement (the ceiling)
    on one split of the judged set: micro and per-angle precision, recall and F1, the micro ones
    with 95% bootstrap intervals, and the share of articles given an angle."""
    from engfeed.angles import article_text

    labels, a_pass, b_pass = gold(), _labels("A"), _labels("B")
    names = [x.name for x in load_angles(None)]
    with set_store() as (feed, drawn, chosen):
        rows = [a for a in drawn if a["split"] == split]
        labeller: dict[int, set[str]] = {}
        keyword: dict[int, set[str]] = {}
        for art in rows:
            stored = feed.store.article(art["uid"]) if art["uid"] in chosen else None
            labeller[art["n"]] = {m.name for m in stored.angles} if stored else set()
            keyword[art["n"]] = set()
            if stored is not None:
                title, excerpt, body = feed.store.bodies([stored.id or 0])[stored.id or 0]
                evidence = feed.labeler.evidence(title, article_text("", excerpt, body).lstrip("\n"))
                hits = [(sum(ev.counts.values()), i) for i, ev in enumerate(evidence) if ev.counts]
                if hits:  # the seed page's rule: the angle whose cue words appear most, one per card
                    keyword[art["n"]] = {names[max(hits)[1]]}
    ids = [a["n"] for a in rows]
    systems = {
        "labeller": labeller,
        "keyword rule": keyword,
        "annotator B vs A (ceiling)": {i: b_pass[i] for i in ids},
    }
    result: dict[str, Any] = {"split": split, "articles": len(ids), "systems": {}}
    for system, predicted in systems.items():
        truth = labels if system != "annotator B vs A (ceiling)" else {i: a_pass[i] for i in ids}
        pairs = [(predicted[i], truth[i]) for i in ids]
        p, r, f = micro(pairs)
        ci = bootstrap(pairs)
        per_angle = {}
        for name in names:
            one = [({name} & pr, {name} & gd) for pr, gd in pairs]
            per_angle[name] = dict(zip(("precision", "recall", "f1"), micro(one), strict=True))
            per_angle[name]["f1_ci"] = bootstrap(one)[2]
            per_angle[name]["support"] = sum(1 for _, gd in one if gd)
        result["systems"][system] = {
            "precision": p,
            "recall": r,
            "f1": f,
            "ci": {"precision": ci[0], "recall": ci[1], "f1": ci[2]},
            "with_angle": sum(1 for i in ids if predicted[i]) / len(ids),
            "per_angle": per_angle,
        }
    result["gold_with_angle"] = sum(1 for i in ids if labels[i]) / len(ids)
    return result


def print_set(result: dict[str, Any], out: Any = print) -> None:
    out(
        f"Angles on the judged set's {result['split']} split ({result['articles']} articles, gold labels;"
        f" {result['gold_with_angle']:.1%} have an angle)"
    )
    for system, m in result["systems"].items():
        ci = m["ci"]
        out(
            f"  {system:<28} P {m['precision']:.2f} [{ci['precision'][0]:.2f}, {ci['precision'][1]:.2f}]"
            f"  R {m['recall']:.2f} [{ci['recall'][0]:.2f}, {ci['recall'][1]:.2f}]"
            f"  F1 {m['f1']:.2f} [{ci['f1'][0]:.2f}, {ci['f1'][1]:.2f}]  with an angle {m['with_angle']:.1%}"
        )
    names = list(next(iter(result["systems"].values()))["per_angle"])
    heads = list(result["systems"])
    out(f"  {'per angle: F1 [95% CI] (gold support)':<38}" + "".join(f"{h[:16]:>22}" for h in heads))
    for name in names:
        cells = ""
        for h in heads:
            m = result["systems"][h]["per_angle"][name]
            cells += f"{m['f1']:>10.2f} [{m['f1_ci'][0]:.2f}, {m['f1_ci'][1]:.2f}]"
        support = result["systems"]["labeller"]["per_angle"][name]["support"]
        out(f"  {name + f' ({support})':<38}{cells}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("draw")
    sub.add_parser("draw-extra")
    sub.add_parser("merge-extra")
    s = sub.add_parser("show")
    s.add_argument("first", type=int)
    s.add_argument("last", type=int)
    sub.add_parser("guidelines")
    sub.add_parser("agreement")
    sub.add_parser("baseline")
    e = sub.add_parser("evaluate")
    e.add_argument("--split", choices=("train", "test"), default="test")
    e.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.cmd == "draw":
        draw()
    elif args.cmd == "draw-extra":
        draw_extra()
    elif args.cmd == "merge-extra":
        merge_extra()
    elif args.cmd == "show":
        show(args.first, args.last)
    elif args.cmd == "guidelines":
        guidelines()
    elif args.cmd == "agreement":
        agreement()
    elif args.cmd == "evaluate":
        result = evaluate_set(args.split)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print_set(result)
    else:
        baseline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
