"""The default deep summary: chosen sentences of the article, never a written one.

Every sentence gets a score from what is measurable without a language model:

* **centrality**: cosine between the sentence's embedding and the article's centroid (the
  mean of all its sentence embeddings), and its similarity to the title;
* **specificity**: numbers (``40%``, ``3x``, ``p99``), names of systems and things (CamelCase,
  acronyms, capitalised words inside the sentence), causes and decisions ("because",
  "we chose", "instead of");
* **position**: the first sentence of a section states its point more often than not;
* **fluff**: announcements, invitations and thanks ("In this post", "we're hiring",
  "stay tuned"), pointers at what a summary cannot show ("the figure above", "the
  following map") and questions are pushed down.

Selection is MMR (maximal marginal relevance): the next sentence maximises
``LAMBDA * score - (1 - LAMBDA) * similarity to what is already chosen``, so takeaways do
not repeat each other. The overview comes from the opening third, in reading order; each
real section gets 1–3 points of its own; takeaways (3–6) come from the whole article.
The weights were set on the dev half of the judged set (bench/summaries) only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engfeed.embed import Embedder, Matrix
from engfeed.summarize.document import Document

LAMBDA = 0.7
MIN_WORDS, MAX_WORDS = 6, 60  # candidate sentences (shorter: fragments; longer: run-ons)
W_CENTRAL, W_TITLE, W_NUMBER, W_NAME, W_CAUSE, W_FIRST, W_FLUFF = 0.55, 0.2, 0.08, 0.05, 0.04, 0.03, 0.35

_NUMBER = re.compile(r"\d")
_NAME = re.compile(r"(?<!^)(?<![.!?] )\b(?:[A-Z][a-z]+[A-Z]\w*|[A-Z]{2,}\w*|[A-Z][a-z]{2,})\b")
_CAUSE = re.compile(
    r"\b(because|so that|which means|as a result|therefore|instead of|rather than|trade-?off|"
    r"we (chose|decided|built|moved|replaced|switched|found|measured|reduced|use)|led to|resulted in)\b",
    re.I,
)
_FLUFF = re.compile(
    r"^(in this (blog )?(post|article|series)|this (blog )?post|today,? we|we['’]re (excited|thrilled|"
    r"happy|hiring)|stay tuned|if you['’]re interested|thanks to|special thanks|follow us|subscribe|"
    r"read more|learn more|check out|join us|let['’]s|here['’]s|below,|first,? let|click)"
    r"|\b(stay tuned|we['’]re hiring|join our team|apply (now|today)|sign up)\b",
    re.I,
)


# Sentences that point at something a summary cannot show ("the figure above").
_DEICTIC = re.compile(
    r"\b(?:(?:figure|chart|graph|table|map|diagram|image|screenshot|plot|snippet)s? (?:above|below)|"
    r"the (?:following|above|below|next) (?:figure|chart|graph|table|map|diagram|image|example|code|"
    r"snippet|screenshot|plot)|as (?:shown|seen|illustrated) (?:above|below|in))\b",
    re.I,
)
# Sentences that lean on the one before them read badly as an overview's opening.
_BACK_REFERENCE = re.compile(
    r"^(second|third|fourth|finally|also|however|but|and|so|then|thus|hence|moreover|furthermore|"
    r"additionally|similarly|likewise|instead|otherwise|meanwhile|this|these|that|those|it|they|"
    r"such|here|there|as a result|in addition|on the other hand|for example|for instance)\b",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Scored:
    index: int  # position in the article
    section: int
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Extract:
    overview: list[str]
    sections: list[tuple[str, list[str]]]
    takeaways: list[str]


def summarize(doc: Document, embedder: Embedder) -> Extract:
    sentences: list[tuple[int, str, bool]] = []  # (section, text, first in section)
    for s_index, sec in enumerate(doc.sections):
        for j, text in enumerate(sec.sentences):
            sentences.append((s_index, text, j == 0))
    texts = [t for _, t, _ in sentences]
    vecs = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), np.float32)
    centroid = _unit(vecs.mean(axis=0)) if len(texts) else np.zeros(embedder.dim, np.float32)
    title_vec = embedder.embed([doc.title])[0] if doc.title else centroid
    scored: list[Scored] = []
    seen: set[str] = set()  # a sentence the article repeats (a pull quote) is a candidate once
    for i, (sec_index, text, first) in enumerate(sentences):
        words = len(text.split())
        if not MIN_WORDS <= words <= MAX_WORDS or text.rstrip().endswith("?") or text in seen:
            continue
        seen.add(text)
        score = (
            W_CENTRAL * float(vecs[i] @ centroid)
            + W_TITLE * float(vecs[i] @ title_vec)
            + W_NUMBER * bool(_NUMBER.search(text))
            + W_NAME * min(len(_NAME.findall(text)), 3) / 3
            + W_CAUSE * bool(_CAUSE.search(text))
            + W_FIRST * first
            - W_FLUFF * bool(_FLUFF.search(text) or _DEICTIC.search(text))
        )
        scored.append(Scored(i, sec_index, text, score))

    n = len(sentences)
    opening = [s for s in scored if s.index < max(6, n // 3) and not _BACK_REFERENCE.match(s.text)]
    overview = _mmr(opening, vecs, 2, exclude=set())
    if sum(len(s.text.split()) for s in overview) < 35 and len(opening) > 2:
        overview = _mmr(opening, vecs, 3, exclude=set())
    overview.sort(key=lambda s: s.index)
    used = {s.index for s in overview}

    want = max(3, min(6, round(doc.words / 400)))
    takeaways = _mmr(scored, vecs, want, exclude=used, seed=[vecs[s.index] for s in overview])

    sections: list[tuple[str, list[str]]] = []
    for heading, members in doc.chapters():
        pool = [s for s in scored if s.section in members]
        if not pool:
            continue
        count = 1 if len(pool) < 8 else 2 if len(pool) < 20 else 3
        picked = sorted(_mmr(pool, vecs, count, exclude=set()), key=lambda s: s.index)
        sections.append((heading, [s.text for s in picked]))
    return Extract([s.text for s in overview], sections, [s.text for s in takeaways])


def _mmr(
    pool: Sequence[Scored], vecs: Matrix, k: int, *, exclude: set[int], seed: Sequence[Matrix] = ()
) -> list[Scored]:
    chosen: list[Scored] = []
    chosen_vecs = list(seed)
    candidates = [s for s in pool if s.index not in exclude]
    while candidates and len(chosen) < k:
        best, best_value = None, -1e9
        for cand in candidates:
            redundancy = max((float(vecs[cand.index] @ v) for v in chosen_vecs), default=0.0)
            value = LAMBDA * cand.score - (1 - LAMBDA) * redundancy
            if value > best_value:
                best, best_value = cand, value
        assert best is not None
        chosen.append(best)
        chosen_vecs.append(vecs[best.index])
        candidates = [c for c in candidates if c is not best]
    return chosen


def _unit(v: npt.NDArray[np.floating]) -> Matrix:
    norm = float(np.linalg.norm(v))
    return (v / norm if norm else v).astype(np.float32)
