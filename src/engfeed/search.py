"""Context Search: hybrid lexical + dense ranking with explainable scores and contexts.

How a query is answered (:meth:`SearchEngine.search`):

1. **Dense.** The query is embedded once (memoised; a dynamic-int8 build of the model
   makes that ~4 ms, see :mod:`engfeed.embed`) and scored against an in-memory
   float32 matrix of every article vector of the current model: one matrix-vector
   product plus ``argpartition``, exact. (From ``APPROX_MIN_ROWS`` vectors on, a
   two-stage scan in a PCA basis keeps 1M articles inside the latency budget; reported
   scores stay exact, see ``_View``.) The matrix is loaded lazily from the store and
   topped up incrementally when another thread or process saves vectors (a
   per-connection change marker makes the "anything new?" check nearly free). Filters
   restrict the rows *before* ranking.
2. **Lexical.** The query becomes a safe FTS5 expression (:mod:`engfeed.query`): all terms
   (``AND``) first, any term (``OR``) when that finds too few; BM25 over title, excerpt
   and body, at most ``bm25_depth`` candidates. Only the newest ``LEXICAL_WINDOW`` matches
   are scored (exact below that), which bounds the cost of common terms on big stores.
3. **Fusion.** Not equal-weight RRF (measured worse than dense alone). A convex blend of
   per-query normalised scores weighted toward the dense side (0.7 / 0.3), with the
   lexical weight halved for articles matching only some terms, a lift toward an
   article's best passage, and a mild recency prior that mostly breaks near-ties.
   Checked on ``bench/relevance`` (see its README): the optimum is flat around these
   round values. Duplicate posts (same title) are shown once.
4. **Context.** For the returned page only: the passage (one or two sentences) of each
   hit most related to the query, scored by dense similarity of the stored passage
   vectors plus query-term overlap, HTML-escaped, query terms wrapped in ``<mark>``.

What is embedded per article: one "document" passage (title, excerpt and the leading
``DOC_WORDS`` words of the body) into ``embeddings``, and, for articles longer than one passage,
their sentence-sized passages (the first ``MAX_PASSAGES``) into ``passages``. Passage
vectors make contexts of concept queries possible without running the model at query
time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import html
import itertools
import logging
import math
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from engfeed.embed import Embedder, stack_blobs, to_blob
from engfeed.models import SearchHit
from engfeed.query import fts_match, highlight_stems, query_terms, stem
from engfeed.store import ArticleFilter, Store
from engfeed.text import title_key

__all__ = [
    "DEFAULT_FUSION",
    "Fusion",
    "Mode",
    "SearchEngine",
    "document_text",
    "passages_of",
]

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
HalfMatrix = npt.NDArray[np.float16]
Progress = Callable[[int, int], None]
Mode = Literal["hybrid", "bm25", "dense"]
_T = TypeVar("_T")

#: Words of body text in the document passage. Measured on bench/relevance with the
#: dynamic-int8 build (one run, paired bootstrap against 200 words with 16 passages): 128
#: words and 8 passages embed the corpus in 21% less time at the same nDCG@10 (hybrid
#: +0.0002, CI -0.007..+0.007; dense +0.0024); 96 words lost hybrid 0.008, 6 passages 0.0014.
DOC_WORDS = 128
#: Longest context / passage shown, in characters of plain text.
PASSAGE_CHARS = 300
#: Passages embedded per article (the leading ones); later text still gets lexical contexts.
MAX_PASSAGES = 8
#: Characters of an article scanned for lexical contexts.
CONTEXT_SCAN_CHARS = 20_000
#: Articles embedded per batch; each batch is saved in its own short transaction.
EMBED_BATCH = 32
#: Rows read from the store per page when (re)loading the vector matrix. Each page passes
#: through Python bytes, a float32 block and its rotation: at 50k rows that peaked 180 MB
#: above the loaded index (100k vectors: 566 vs 390 MB peak RSS at 10k), for no speed gain.
LOAD_PAGE = 10_000
#: From this many vectors on, dense top-k is two-stage (see ``_View``); below, exact.
APPROX_MIN_ROWS = 50_000
#: Leading PCA components scored in the first stage, and rows it hands to exact scoring
#: (at least this many, and at least 1% of the rows).
#: Measured on bench/search.py's stores (vectors fitted to MiniLM's): 64 components and 2000
#: candidates keep recall@20 at 1.000 and recall@100 at 0.999 (at 1M: 10k candidates, 0.9997)
#: while scanning half the bytes of 128 (100k: 8.5 -> 5.5 ms; 1M: 62 -> 40 ms p50).
HEAD_DIMS = 64
APPROX_CANDIDATES = 2000
#: Unfiltered full-text queries score at most the newest this many matches (see
#: ``Store.fts_search``): a common term over 100k articles has 10-20k matches and cost
#: 15-30 ms to score in full, a window of 1000 ~2 ms. The dense side still sees every
#: article. On the relevance corpus (8.8k articles) the AND window never binds, even at 500.
LEXICAL_WINDOW = 1000
#: The same for the OR fallback. Its matches are many more: on the relevance corpus a window
#: of 1000 already costs hybrid nDCG@10 0.005 (BM25 alone 0.004), 2000 nothing.
OR_WINDOW = 2000
#: Work cap of a filtered OR fallback, in SQLite VM steps (~0.1 ms per 1000 here): a broad OR
#: over 100k+ articles scores tens of thousands of matches (30-250 ms) for little gain.
OR_MAX_STEPS = 100_000
#: From this many vectors on, the full-text query runs on a worker thread in parallel with
#: the dense side. At 100k an interleaved A/B (bench stores, 300 queries each way) showed no
#: difference on 2 cores, so smaller stores keep one thread; at 1M, where FTS alone costs
#: 20-60 ms, the overlap pays.
PARALLEL_LEXICAL_MIN_ROWS = 500_000
QUERY_CACHE = 256
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Fusion:
    """How lexical and dense evidence are blended (see bench/relevance/README.md).

    ``fused = dense * dense_norm + bm25' * bm25_norm + recency * exp(-age / half_life)``
    where ``dense_norm`` maps the query's best dense score to 1 and the score at rank
    ``dense_depth`` to 0, ``bm25_norm`` is BM25 over the query's best BM25, and ``bm25'``
    is ``bm25`` times ``or_discount`` when only the ``OR`` fallback found matches.
    """

    dense: float = 0.7
    bm25: float = 0.3
    or_discount: float = 0.5
    recency: float = 0.03
    half_life_days: float = 365.0
    #: How far a passage can lift its article: dense = doc + passage * max(0, best passage - doc).
    passage: float = 0.3
    dense_depth: int = 100
    bm25_depth: int = 200
    #: Fewer ``AND`` matches than this (and more than one term): also run the ``OR`` query.
    and_min_hits: int = 10
    #: When > 0, (weighted) reciprocal rank fusion instead: ``dense / (k + dense rank) +
    #: bm25 / (k + bm25 rank)``. Kept for comparison in bench/relevance; it ranks worse.
    rrf_k: int = 0


DEFAULT_FUSION = Fusion()


@dataclass(slots=True)
class _Ranking:
    ids: list[int]
    why: list[dict[str, float | int | None]]
    qvec: Vector | None
    terms: list[str]
    passages: dict[int, list[tuple[str, bytes]]] | None = None  # None: not loaded


# ------------------------------------------------------------------------------ texts

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_PARAGRAPH = re.compile(r"\s*\n\s*")
_SPACE = re.compile(r"\s+")
_WORD_RE = re.compile(r"\w+")


def _lead_text(excerpt: str, body: str) -> str:
    """Excerpt plus body, without the excerpt when the body already starts with it."""
    excerpt, body = excerpt.strip(), body.strip()
    if not body:
        return excerpt
    if not excerpt or excerpt[:80].rstrip("…. ") in body[:2000]:
        return body
    return f"{excerpt}\n{body}"


def document_text(title: str, excerpt: str, body: str) -> str:
    """The one passage an article is embedded as: title, excerpt, leading body words."""
    lead = _lead_text(excerpt, body)
    words = lead.split(maxsplit=DOC_WORDS)
    return f"{title.strip()}\n{' '.join(words[:DOC_WORDS])}".strip()


def _split_lazily(pattern: re.Pattern[str], text: str) -> Iterator[str]:
    """``pattern.split(text)``, one piece at a time (long texts are rarely read to the end)."""
    pos = 0
    for m in pattern.finditer(text):
        yield text[pos : m.start()]
        pos = m.end()
    yield text[pos:]


def _sentences(text: str) -> Iterator[str]:
    """Sentences of ``text`` in order, whitespace collapsed (lazily: callers may stop early)."""
    for para in _split_lazily(_PARAGRAPH, text):
        for sentence in _split_lazily(_SENTENCE_END, para):
            sentence = _SPACE.sub(" ", sentence).strip()
            if sentence:
                yield sentence


def _windows(sentence: str, size: int) -> list[str]:
    """Split an over-long sentence into word-aligned windows of at most ``size`` chars."""
    out: list[str] = []
    cur = ""
    for word in sentence.split(" "):
        word = word[:size]
        if cur and len(cur) + 1 + len(word) > size:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        out.append(cur)
    return out


def _iter_chunks(text: str, size: int = PASSAGE_CHARS) -> Iterator[str]:
    """One- or two-sentence chunks of at most ``size`` characters, in text order, lazily."""
    cur, count = "", 0
    for sentence in _sentences(text):
        if len(sentence) > size:
            if cur:
                yield cur
                cur, count = "", 0
            yield from _windows(sentence, size)
            continue
        if cur and count < 2 and len(cur) + 1 + len(sentence) <= size:
            cur, count = f"{cur} {sentence}", count + 1
        else:
            if cur:
                yield cur
            cur, count = sentence, 1
    if cur:
        yield cur


def _chunk(text: str, *, limit: int | None = None, size: int = PASSAGE_CHARS) -> list[str]:
    """The first ``limit`` (default: all) chunks of :func:`_iter_chunks`."""
    return list(itertools.islice(_iter_chunks(text, size), limit))


def passages_of(title: str, excerpt: str, body: str) -> list[str]:
    """The passages embedded for an article: none when its text is a single passage."""
    chunks = _chunk(_lead_text(excerpt, body)[: MAX_PASSAGES * PASSAGE_CHARS * 2], limit=MAX_PASSAGES)
    return chunks if len(chunks) > 1 else []


def has_passages(title: str, excerpt: str, body: str) -> bool:
    """``bool(passages_of(...))``, reading no further than the second chunk."""
    return len(_chunk(_lead_text(excerpt, body)[: MAX_PASSAGES * PASSAGE_CHARS * 2], limit=2)) > 1


# ------------------------------------------------------------------------ highlighting


@lru_cache(maxsize=256)
def _stem_prefixes(stems: frozenset[str]) -> tuple[str, ...]:
    """What a word with one of ``stems`` starts with (see :func:`_stem_pattern`), longest first."""
    return tuple(sorted({s if len(s) <= 3 else s[:-1] for s in stems if len(s) >= 2}, key=len, reverse=True))


@lru_cache(maxsize=256)
def _stem_pattern(stems: frozenset[str]) -> re.Pattern[str] | None:
    """Words that may have one of ``stems`` as their stem (verified with :func:`stem`).

    A stem is a prefix of its word except for a rewritten last letter (``policy`` from
    ``policies``), so a word qualifies when it starts with the stem minus its last letter.
    """
    prefixes = _stem_prefixes(stems)
    if not prefixes:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in prefixes) + r")\w*", re.IGNORECASE)


def _last_possible_match(text: str, stems: frozenset[str]) -> int | None:
    """An end offset no query-stem word of ``text`` lies beyond, or None when there is none.

    A cheap upper bound (``str.rfind`` of each stem's prefix, no regex, no stemming) used to
    skip text after the last query term without scanning every match.
    """
    lowered = text.lower()
    ends = [lowered.rfind(p) for p in _stem_prefixes(stems)]
    last = max(ends, default=-1)
    if last < 0:
        return None
    space = lowered.find(" ", last)
    return len(text) if space < 0 else space


def _stems_in(text: str, stems: frozenset[str]) -> Iterator[tuple[re.Match[str], str]]:
    """Each word of ``text`` whose stem is a query stem, with that stem."""
    pattern = _stem_pattern(stems)
    if pattern is None:
        return
    for m in pattern.finditer(text):
        st = stem(m.group().lower())
        if st in stems:
            yield m, st


def _overlap(text: str, stems: frozenset[str]) -> float:
    """Share of the query's stems found in ``text`` (0..1)."""
    if not stems:
        return 0.0
    return len({st for _, st in _stems_in(text, stems)}) / len(stems)


def _clip(text: str, stems: frozenset[str], size: int = PASSAGE_CHARS) -> str:
    """At most ``size`` characters of ``text``, around the first query term if any."""
    if len(text) <= size:
        return text
    start = 0
    first = next(_stems_in(text, stems), None)
    if first is not None and first[0].start() > size // 3:
        at = first[0].start()
        start = at - size // 3
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < at else start
    piece = text[start : start + size - 2]
    if start + len(piece) < len(text) and " " in piece[size // 2 :]:
        piece = piece[: piece.rfind(" ")]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + len(piece) < len(text) else ""
    return f"{prefix}{piece.strip()}{suffix}"


def usable_stems(terms: Sequence[str]) -> frozenset[str]:
    """The query stems worth highlighting (two letters or more)."""
    return frozenset(s for s in highlight_stems(terms) if len(s) >= 2)


def mark(text: str, stems: frozenset[str]) -> str:
    """HTML-escape ``text`` and wrap words whose stem is a query stem in ``<mark>``."""
    out: list[str] = []
    pos = 0
    for m, _ in _stems_in(text, stems):
        out.append(html.escape(text[pos : m.start()]))
        out.append(f"<mark>{html.escape(m.group())}</mark>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


# ------------------------------------------------------------------------ vector index


@dataclass(frozen=True, slots=True)
class _View:
    """A consistent snapshot of the vector index, and the one place vectors are scored.

    Rows are stored as two contiguous blocks, ``head`` (the first ``split`` coordinates)
    and ``tail`` (the rest), so that the head alone can be scanned at full memory speed.
    Below ``APPROX_MIN_ROWS`` rows ``split`` is the full dimension and scoring is exact:
    one matrix-vector product. From there on rows are stored in a PCA basis (``rotation``:
    orthonormal, so dot products are unchanged) split after ``HEAD_DIMS`` components, and
    the top-k is found in two stages: the head (the bulk of the variance of real
    embeddings) picks ``APPROX_CANDIDATES`` rows, whose exact scores then decide. Only
    which rows are considered is approximate (recall is measured in bench/search.py).

    The tail is float16, as vectors are stored: it is only ever read for a few thousand
    candidate rows (a gather, converted as it is scored), never scanned whole. That halves
    the memory of a big index (100k vectors: 154 -> 90 MB; 1M: 1.5 -> 0.9 GB). Scores move
    by the float16 rounding of the rotated coordinates, at most ~1e-3 and ~1e-4 typically,
    the same order as the float16 storage itself.
    """

    ids: npt.NDArray[np.int64]
    head: Matrix
    tail: HalfMatrix
    published: npt.NDArray[np.int64]  # unix seconds, for the recency prior
    rotation: Matrix | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def split(self) -> int:
        return int(self.head.shape[1])

    def prepare(self, q: Vector) -> Vector:
        """The query in the basis the rows are stored in."""
        if self.rotation is None:
            return q
        out: Vector = (q @ self.rotation).astype(np.float32)
        return out

    def row(self, r: int) -> Vector:
        """Row ``r`` back in the model's basis."""
        v: Vector = np.concatenate([self.head[r], self.tail[r]]).astype(np.float32)
        if self.rotation is not None:
            v = (self.rotation @ v).astype(np.float32)
        return v

    def scores(self, qr: Vector, rows: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.float32]:
        """Scores of ``rows`` (all rows when None; only below ``APPROX_MIN_ROWS``, where
        there is no tail, is that cheap)."""
        k = self.split
        if rows is None:
            out: npt.NDArray[np.float32] = self.head @ qr[:k]
            if self.tail.shape[1]:
                out += _half_scores(self.tail, qr[k:])
            return out
        out = self.head[rows] @ qr[:k]
        if self.tail.shape[1]:
            out += _half_scores(self.tail[rows], qr[k:])
        return out

    def top(
        self, qr: Vector, k: int, rows: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The best ``k`` rows (of ``rows``, or of all) for prepared query ``qr``, best first."""
        n = len(self.ids) if rows is None else len(rows)
        if n == 0 or k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        if self.rotation is not None and n >= APPROX_MIN_ROWS:
            coarse = self.head @ qr[: self.split]
            if rows is not None:
                coarse = coarse[rows]
            want = max(APPROX_CANDIDATES, n // 100, 4 * k)
            # Unordered candidates, in row order (a sequential gather for the exact scores).
            pick = np.sort(np.argpartition(coarse, n - want)[n - want :]) if want < n else np.arange(n)
            cand = pick if rows is None else rows[pick]
            exact = self.scores(qr, cand)
            order = _top_k(exact, k)
            return cand[order], exact[order]
        if rows is None:
            full = self.scores(qr)
            order = _top_k(full, k)
            return order, full[order]
        gather = 4 * n < len(self.ids) or self.tail.shape[1] > 0  # never scan a whole tail
        sub = self.scores(qr, rows) if gather else self.scores(qr)[rows]
        order = _top_k(sub, k)
        return rows[order], sub[order]


def _half_scores(block: HalfMatrix, q: Vector) -> npt.NDArray[np.float32]:
    """``block @ q`` for float16 rows, in float32 (converted in slices: no full copy)."""
    out = np.empty(len(block), dtype=np.float32)
    step = 8192
    for lo in range(0, len(block), step):
        out[lo : lo + step] = block[lo : lo + step].astype(np.float32) @ q
    return out


def _release_freed_memory() -> None:
    """Hand memory freed by a big load back to the OS (glibc keeps it otherwise).

    Loading 100k vectors leaves ~60-80 MB of freed pages in glibc's heap (the rows pass
    through Python bytes objects); ``malloc_trim`` returns them. A no-op elsewhere.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return trim


def pca_rotation(sample: Matrix) -> Matrix:
    """Orthonormal basis of the sample's principal directions, strongest first (uncentred)."""
    gram = sample.T.astype(np.float64) @ sample.astype(np.float64)
    _, vecs = np.linalg.eigh(gram)
    out: Matrix = np.ascontiguousarray(vecs[:, ::-1]).astype(np.float32)
    return out


class _VectorIndex:
    """All vectors of one model as float32 rows sorted by article id (see :class:`_View`).

    Appends go into spare capacity so readers holding an older :class:`_View` are never
    disturbed; a reload or the switch to the PCA basis swaps in new arrays.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.Lock()
        self._local = threading.local()
        self._n = 0
        self._max_id = 0
        self.generation = 0
        self._reset()

    def snapshot(self) -> _View:
        return self._view

    def invalidate(self) -> None:
        with self._lock:
            self._reset()

    def _reset(self, rotation: Matrix | None = None, split: int | None = None, capacity: int = 0) -> None:
        """Empty the index; ``capacity`` rows are reserved (untouched pages cost no memory)."""
        split = self.dim if split is None else min(split, self.dim)
        self._ids = np.empty(capacity, dtype=np.int64)
        self._pub = np.empty(capacity, dtype=np.int64)
        self._head: Matrix = np.empty((capacity, split), dtype=np.float32)
        self._tail: HalfMatrix = np.empty((capacity, self.dim - split), dtype=np.float16)
        self._rotation = rotation
        self._n, self._max_id = 0, 0
        self._view = _View(self._ids[:0], self._head[:0], self._tail[:0], self._pub[:0], rotation)
        self.generation += 1

    def refresh(self, store: Store, model: str) -> None:
        marker = store.change_marker()
        if getattr(self._local, "marker", None) == marker:
            return
        count, max_id = store.vector_stats(model)
        with self._lock:
            if (count, max_id) != (self._n, self._max_id):
                if self._n and count > self._n and max_id > self._max_id:
                    self._load_after(store, model)
                if (count, max_id) != (self._n, self._max_id):
                    # First load, or deletions / replacements below max id / model change.
                    # A big index is rotated page by page as it loads (no second copy).
                    rotation = self._sample_rotation(store, model) if count >= APPROX_MIN_ROWS else None
                    split = HEAD_DIMS if rotation is not None else None
                    self._reset(rotation, split, capacity=count + count // 8 + 1024)
                    self._load_after(store, model)
                    _release_freed_memory()
            if self._rotation is None and self._n >= APPROX_MIN_ROWS:
                self._rotate()  # grew past the threshold by appends: rotate once
        self._local.marker = marker

    def _sample_rotation(self, store: Store, model: str) -> Matrix:
        _, blobs, _ = store.load_vectors_after(model, 0, limit=20_000)
        good = [b for b in blobs if len(b) == 2 * self.dim]
        return pca_rotation(stack_blobs(good, self.dim))

    def _rotate(self) -> None:
        """Switch to the PCA basis (once the index is big enough for two-stage search)."""
        n, split = self._n, min(HEAD_DIMS, self.dim)
        view = self._view
        step = max(1, n // 20_000)
        sample = np.concatenate([view.head[:n:step], view.tail[:n:step]], axis=1)
        rotation = pca_rotation(sample)
        cap = n + n // 8 + 1024
        ids = np.empty(cap, dtype=np.int64)
        ids[:n] = view.ids
        pub = np.empty(cap, dtype=np.int64)
        pub[:n] = view.published
        head: Matrix = np.empty((cap, split), dtype=np.float32)
        tail: HalfMatrix = np.empty((cap, self.dim - split), dtype=np.float16)
        for lo in range(0, n, LOAD_PAGE):
            hi = min(n, lo + LOAD_PAGE)
            block = np.concatenate([view.head[lo:hi], view.tail[lo:hi].astype(np.float32)], axis=1) @ rotation
            head[lo:hi], tail[lo:hi] = block[:, :split], block[:, split:]
        self._ids, self._pub, self._head, self._tail, self._rotation = ids, pub, head, tail, rotation
        self._view = _View(ids[:n], head[:n], tail[:n], pub[:n], rotation)
        self.generation += 1

    def patch(self, ids: npt.NDArray[np.int64], vectors: Matrix) -> None:
        """Overwrite the rows of ``ids`` that are loaded (others arrive through refresh)."""
        with self._lock:
            view = self._view
            rows = _rows_of(view.ids, ids)
            if not len(rows):
                return
            pos = {aid: i for i, aid in enumerate(ids.tolist())}
            block = np.asarray(vectors, dtype=np.float32)[[pos[a] for a in view.ids[rows].tolist()]]
            # Match the float16 round trip of vectors loaded from the store.
            block = block.astype(np.float16).astype(np.float32)
            if self._rotation is not None:
                block = block @ self._rotation
            split = view.split
            view.head[rows] = block[:, :split]
            view.tail[rows] = block[:, split:]
            self.generation += 1

    def _load_after(self, store: Store, model: str) -> None:
        while True:
            ids, blobs, published = store.load_vectors_after(model, self._max_id, limit=LOAD_PAGE)
            if not ids:
                return
            last, complete = ids[-1], len(ids) < LOAD_PAGE
            good = [i for i, b in enumerate(blobs) if len(b) == 2 * self.dim]
            if len(good) != len(blobs):
                log.warning("skipping %d stored vectors of the wrong size", len(blobs) - len(good))
                ids, blobs = [ids[i] for i in good], [blobs[i] for i in good]
                published = [published[i] for i in good]
            if ids:
                block = stack_blobs(blobs, self.dim)
                if self._rotation is not None:
                    block = block @ self._rotation
                self._append(np.asarray(ids, dtype=np.int64), block, np.asarray(published, dtype=np.int64))
            self._max_id = max(self._max_id, last)
            if complete:
                return

    def _append(self, ids: npt.NDArray[np.int64], block: Matrix, published: npt.NDArray[np.int64]) -> None:
        need = self._n + len(ids)
        split = self._head.shape[1]
        if need > len(self._ids):
            cap = max(need, int(len(self._ids) * 1.25) + 1024)
            new_ids = np.empty(cap, dtype=np.int64)
            new_pub = np.empty(cap, dtype=np.int64)
            new_head: Matrix = np.empty((cap, split), dtype=np.float32)
            new_tail: HalfMatrix = np.empty((cap, self.dim - split), dtype=np.float16)
            new_ids[: self._n] = self._ids[: self._n]
            new_pub[: self._n] = self._pub[: self._n]
            new_head[: self._n] = self._head[: self._n]
            new_tail[: self._n] = self._tail[: self._n]
            self._ids, self._pub, self._head, self._tail = new_ids, new_pub, new_head, new_tail
        self._ids[self._n : need] = ids
        self._pub[self._n : need] = published
        self._head[self._n : need] = block[:, :split]
        self._tail[self._n : need] = block[:, split:]
        self._n = need
        self._max_id = int(ids[-1])
        self._view = _View(
            self._ids[:need], self._head[:need], self._tail[:need], self._pub[:need], self._rotation
        )
        self.generation += 1


def _rows_of(ids: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Row numbers of the ``wanted`` article ids that have a row (sorted ``ids``)."""
    if len(ids) == 0 or len(wanted) == 0:
        return np.empty(0, dtype=np.int64)
    pos = np.searchsorted(ids, wanted)
    pos = np.minimum(pos, len(ids) - 1)
    hit = ids[pos] == wanted
    rows: npt.NDArray[np.int64] = pos[hit].astype(np.int64)
    return rows


def _top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Indices of the ``k`` largest scores, best first."""
    n = len(scores)
    if n == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    order: npt.NDArray[np.int64] = part[np.argsort(-scores[part], kind="stable")].astype(np.int64)
    return order


# ------------------------------------------------------------------------------ engine


class SearchEngine:
    """Hybrid search, related articles and embedding upkeep over one store."""

    def __init__(self, store: Store, embedder: Embedder | None, *, fusion: Fusion = DEFAULT_FUSION) -> None:
        self.store = store
        self.embedder = embedder
        self.fusion = fusion
        self._index = _VectorIndex(embedder.dim) if embedder is not None else None
        self._qcache: OrderedDict[str, Vector] = OrderedDict()
        self._qlock = threading.Lock()
        self._fcache: OrderedDict[tuple[ArticleFilter, int, tuple[int, int]], npt.NDArray[np.int64]] = (
            OrderedDict()
        )
        self._flock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._elock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        """Workers for the full-text side of hybrid queries (each keeps its own connection)."""
        if self._executor is None:
            with self._elock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="engfeed-fts")
        return self._executor

    def close(self) -> None:
        """Stop the worker threads (the store is the caller's to close)."""
        with self._elock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    # -- indexing ------------------------------------------------------------------------
    # Two passes: every pending article's document vector first (concept search covers it
    # from then on), then the passages of those that have them (the passage lift and the
    # contexts of concept queries). On the shared corpus the first pass is about half the
    # model work (bench/ingest.py --index reports both milestones).

    def index_pending(self, progress: Progress | None = None, passages: Progress | None = None) -> int:
        """Embed every article that has no vector of the current model, then every pending
        passage; returns the count of articles embedded."""
        count = self.embed_missing(progress)
        self.embed_pending_passages(passages)
        return count

    def reindex(self, progress: Progress | None = None, passages: Progress | None = None) -> int:
        """Re-embed every article (after a model change, or to refresh edited articles)."""
        if self.embedder is None:
            return 0
        count = self.embed_documents(self.store.all_ids(), progress)
        self.embed_pending_passages(passages)
        return count

    def reembed(self, ids: Sequence[int], progress: Progress | None = None) -> int:
        """Re-embed these articles (their text changed), passages included; returns the count."""
        count = self.embed_documents(ids, progress, patch=True)
        self.embed_pending_passages()
        return count

    def embed_missing(self, progress: Progress | None = None) -> int:
        """The first pass for every article without a vector of the current model."""
        if self.embedder is None:
            return 0
        return self.embed_documents(self.store.ids_missing_vectors(self.embedder.name), progress)

    def embed_documents(
        self, ids: Sequence[int], progress: Progress | None = None, *, patch: bool = False
    ) -> int:
        """The first pass: document vectors of ``ids``; those with passages are marked
        pending (their old passages go, see ``Store.save_document_vectors``).

        With ``patch`` the rows of this process's in-memory index are replaced too: a
        replaced vector changes neither the count nor the highest id, so the index could
        not notice it by itself."""
        if self.embedder is None or not ids:
            return 0
        model = self.embedder.name
        total, done = len(ids), 0
        for start in range(0, total, EMBED_BATCH):
            batch = list(ids[start : start + EMBED_BATCH])
            texts = self.store.bodies(batch)
            present = [i for i in batch if i in texts]
            # Model work happens outside any transaction; each save is one short write.
            vecs = self.embedder.embed([document_text(*texts[i]) for i in present])
            self.store.save_document_vectors(
                model,
                [(aid, to_blob(v), has_passages(*texts[aid])) for aid, v in zip(present, vecs, strict=True)],
            )
            if patch and self._index is not None:
                self._index.patch(np.asarray(present, dtype=np.int64), vecs)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        return done

    def embed_pending_passages(self, progress: Progress | None = None) -> int:
        """The second pass: the passages of every article marked pending; returns the count
        of articles done. A crash in between loses nothing: they stay pending."""
        if self.embedder is None:
            return 0
        model = self.embedder.name
        ids = self.store.ids_pending_passages(model)
        total, done = len(ids), 0
        for start in range(0, total, EMBED_BATCH):
            batch = ids[start : start + EMBED_BATCH]
            texts = self.store.bodies(batch)
            present = [i for i in batch if i in texts]
            passages = [passages_of(*texts[i]) for i in present]
            flat = [p for ps in passages for p in ps]
            vecs = self.embedder.embed(flat)
            items: list[tuple[int, list[tuple[str, bytes]]]] = []
            offset = 0
            for aid, ps in zip(present, passages, strict=True):
                items.append((aid, [(p, to_blob(vecs[offset + j])) for j, p in enumerate(ps)]))
                offset += len(ps)
            self.store.save_passages(model, items)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        return done

    # -- helpers ---------------------------------------------------------------------------
    def _vectors(self) -> _View:
        assert self._index is not None and self.embedder is not None
        self._index.refresh(self.store, self.embedder.name)
        return self._index.snapshot()

    def _query_vector(self, text: str) -> Vector:
        assert self.embedder is not None
        key = " ".join(text.split())[:2000]
        with self._qlock:
            hit = self._qcache.get(key)
            if hit is not None:
                self._qcache.move_to_end(key)
                return hit
        vec = np.asarray(self.embedder.embed_query(key), dtype=np.float32)
        with self._qlock:
            self._qcache[key] = vec
            while len(self._qcache) > QUERY_CACHE:
                self._qcache.popitem(last=False)
        return vec

    def _filter_rows(self, flt: ArticleFilter, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        assert self._index is not None
        key = (flt, self._index.generation, self.store.change_marker())
        with self._flock:
            rows = self._fcache.get(key)
            if rows is not None:
                self._fcache.move_to_end(key)
                return rows
        wanted = np.asarray(sorted(self.store.filtered_ids(flt)), dtype=np.int64)
        rows = _rows_of(ids, wanted)
        with self._flock:
            self._fcache[key] = rows
            while len(self._fcache) > 16:
                self._fcache.popitem(last=False)
        return rows

    def _lexical(self, text: str, flt: ArticleFilter, depth: int) -> tuple[list[tuple[int, float]], int]:
        """BM25 hits ``(id, positive score)`` and how many leading ones match every term.

        ``AND`` first; when it finds fewer than ``and_min_hits``, the ``OR`` matches follow
        the ``AND`` ones.
        """
        terms = query_terms(text)
        if not terms:
            return [], 0
        try:
            expr = fts_match(text, mode="and")
            hits = self.store.fts_search(expr, flt, limit=depth, window=LEXICAL_WINDOW) if expr else []
            if len(hits) >= self.fusion.and_min_hits or len(terms) == 1:
                return hits, len(hits)
            expr = fts_match(text, mode="or")
            wider = (
                self.store.fts_search_bounded(
                    expr, flt, limit=depth, max_steps=OR_MAX_STEPS, window=OR_WINDOW
                )
                if expr
                else []
            )
            if wider is None:  # too broad to score within budget: the AND hits (and dense) decide
                log.debug("OR fallback over budget for %r", text[:100])
                wider = []
        except sqlite3.OperationalError as exc:  # never let a query string break search
            log.warning("full-text query failed for %r: %s", text[:100], exc)
            return [], 0
        seen = {i for i, _ in hits}
        return hits + [(i, s) for i, s in wider if i not in seen][: max(0, depth - len(hits))], len(hits)

    def _recency(self, ids: Sequence[int], now: float, view: _View | None = None) -> dict[int, float]:
        """``exp(-age * ln 2 / half_life)`` per article (publish dates from the index when loaded)."""
        half_life = max(self.fusion.half_life_days, 1e-6) * DAY
        published: dict[int, int] = {}
        if view is not None and len(view):
            wanted = np.asarray(ids, dtype=np.int64)
            pos = np.minimum(np.searchsorted(view.ids, wanted), len(view) - 1)
            hit = view.ids[pos] == wanted
            published = dict(zip(wanted[hit].tolist(), view.published[pos[hit]].tolist(), strict=True))
        missing = [i for i in ids if i not in published]
        if missing:
            published.update(self.store.published_map(missing))
        return {
            i: math.exp(-max(0.0, now - published[i]) * math.log(2) / half_life) if i in published else 0.0
            for i in ids
        }

    # -- ranking -----------------------------------------------------------------------------
    def rank(
        self, query: str, flt: ArticleFilter = ArticleFilter(), *, limit: int = 20, mode: Mode = "hybrid"
    ) -> list[tuple[int, float, dict[str, float | int | None]]]:
        """Ranked ``(article id, score, why)`` without loading articles or contexts."""
        ranking = self._rank(query, flt, limit=limit, mode=mode)
        return [(i, float(w["fused"] or 0.0), w) for i, w in zip(ranking.ids, ranking.why, strict=True)]

    def _rank(self, query: str, flt: ArticleFilter, *, limit: int, mode: Mode) -> _Ranking:
        fz = self.fusion
        text = query[:2000].replace("\x00", " ")
        terms = query_terms(text)
        use_dense = mode != "bm25" and self.embedder is not None
        use_lexical = mode != "dense" or not use_dense
        view: _View | None = self._vectors() if use_dense else None
        # Lexical side. On a big index it runs on a worker thread while the query is embedded
        # and scanned (SQLite, numpy and onnxruntime release the GIL); below that the overlap
        # measured no gain on 2 cores (see PARALLEL_LEXICAL_MIN_ROWS).
        lexical: list[tuple[int, float]] = []
        n_all = 0
        pending: Future[tuple[list[tuple[int, float]], int]] | None = None
        if use_lexical and terms:
            depth = max(fz.bm25_depth, limit)
            if view is not None and len(view) >= PARALLEL_LEXICAL_MIN_ROWS:
                pending = self._pool().submit(self._lexical, text, flt, depth)
            else:
                lexical, n_all = self._lexical(text, flt, depth)
        # Dense side: exact cosine of the document vectors (top rows plus the BM25 hits).
        dense: dict[int, float] = {}
        dense_rank: dict[int, int] = {}
        retrieved: list[int] = []
        qvec: Vector | None = None
        qr: Vector | None = None
        try:
            if view is not None and len(view):
                qvec = self._query_vector(text)
                qr = view.prepare(qvec)
                rows = self._filter_rows(flt, view.ids) if self.store.restricts(flt) else None
                top_rows, top_scores = view.top(qr, max(fz.dense_depth, limit), rows)
                retrieved = view.ids[top_rows].tolist()
                for r, (aid, s) in enumerate(zip(retrieved, top_scores.tolist(), strict=True), 1):
                    dense[aid] = float(s)
                    dense_rank[aid] = r
        finally:
            if pending is not None:
                lexical, n_all = pending.result()
        bm25 = dict(lexical)
        bm25_rank = {aid: r for r, (aid, _) in enumerate(lexical, 1)}
        if view is not None and qr is not None:
            extra_rows = _rows_of(view.ids, np.asarray([i for i in bm25 if i not in dense], dtype=np.int64))
            if len(extra_rows):
                extra = view.scores(qr, extra_rows).tolist()
                for aid, s in zip(view.ids[extra_rows].tolist(), extra, strict=True):
                    dense[aid] = float(s)
        # Candidates.
        if mode == "dense" and use_dense:
            cands = list(dense_rank)
        elif not use_dense:
            cands = list(bm25)
        else:
            cands = list(dict.fromkeys([*dense_rank, *bm25]))
        if not cands:
            return _Ranking([], [], qvec, terms)
        # A long article is as related as its best passage: lift the document score toward it.
        passages: dict[int, list[tuple[str, bytes]]] | None = None
        if mode == "hybrid" and qvec is not None and self.embedder is not None:
            passages = self.store.load_passages(self.embedder.name, cands)
            if fz.passage > 0:
                for aid, best in self._passage_sims(passages, qvec).items():
                    d = dense.get(aid)
                    if d is not None and best > d:
                        dense[aid] = d + fz.passage * (best - d)
        # Per-query normalisation: the best dense score maps to 1, the dense_depth-th to 0.
        ranked_dense = sorted((dense[a] for a in retrieved), reverse=True)
        dense_top = max([*ranked_dense[:1], *(dense[a] for a in cands if a in dense)], default=0.0)
        dense_floor = ranked_dense[min(fz.dense_depth, len(ranked_dense)) - 1] if ranked_dense else 0.0
        recency = self._recency(cands, time.time(), view)
        bm25_max = max(bm25.values(), default=0.0)
        spread = dense_top - dense_floor
        scored: list[tuple[float, int, tuple[float | None, float | None, float]]] = []
        for aid in cands:
            d, b, rec = dense.get(aid), bm25.get(aid), recency.get(aid, 0.0)
            dn = 0.0
            if d is not None:
                dn = 1.0 if spread <= 1e-9 else min(1.0, max(0.0, (d - dense_floor) / spread))
            bn = b / bm25_max if (b is not None and bm25_max > 0) else 0.0
            # Lexical evidence is strong when every term matched, weaker for OR-only matches.
            w_bm25 = fz.bm25 if bm25_rank.get(aid, n_all + 1) <= n_all else fz.bm25 * fz.or_discount
            fused: float
            if mode == "dense" and use_dense:
                fused = d if d is not None else -1.0  # pure baseline for the relevance harness
            elif mode == "bm25":
                fused = bn  # pure baseline for the relevance harness
            elif not use_dense:
                fused = bn + fz.recency * rec  # no embedder: BM25 with the recency prior
            elif not bm25:
                fused = dn + fz.recency * rec
            elif fz.rrf_k > 0:
                dr, br = dense_rank.get(aid), bm25_rank.get(aid)
                fused = (fz.dense / (fz.rrf_k + dr) if dr else 0.0) + (
                    fz.bm25 / (fz.rrf_k + br) if br else 0.0
                )
                fused += fz.recency * rec
            else:
                fused = fz.dense * dn + w_bm25 * bn + fz.recency * rec
            scored.append((fused, aid, (b, d, rec)))
        scored.sort(key=lambda t: (-t[0], -t[1]))
        chosen = self._distinct(scored, limit)
        whys: list[dict[str, float | int | None]] = [
            {
                "bm25_rank": bm25_rank.get(aid),
                "dense_rank": dense_rank.get(aid),
                "bm25": None if b is None else round(b, 6),
                "dense": None if d is None else round(d, 6),
                "recency": round(rec, 6),
                "fused": round(fused, 6),
            }
            for fused, aid, (b, d, rec) in chosen
        ]
        return _Ranking([a for _, a, _ in chosen], whys, qvec, terms, passages)

    def _distinct(self, scored: list[tuple[float, int, _T]], limit: int) -> list[tuple[float, int, _T]]:
        """The first ``limit`` entries, skipping repeats of an article already listed.

        The same post reached under two URLs (or syndicated by another feed) is stored
        twice; it should be shown once. Same normalised title means same post, except for
        short titles ("Update", "Week 12"), which must also share the source.
        """
        out: list[tuple[float, int, _T]] = []
        seen: set[tuple[str, str]] = set()
        start = 0
        while len(out) < limit and start < len(scored):
            window = scored[start : start + limit + 10]
            start += len(window)
            info = self.store.titles(a for _, a, _ in window)
            for item in window:
                title, source = info.get(item[1], ("", ""))
                norm = title_key(title)
                key = (norm, "" if len(norm) >= 20 else source.casefold())
                if norm and key in seen:
                    continue
                seen.add(key)
                out.append(item)
                if len(out) >= limit:
                    break
        return out

    def _passage_sims(self, passages: dict[int, list[tuple[str, bytes]]], qvec: Vector) -> dict[int, float]:
        """Best passage cosine per article."""
        assert self._index is not None
        dim = self._index.dim
        owners: list[int] = []
        blobs: list[bytes] = []
        for aid, items in passages.items():
            for _, blob in items:
                if len(blob) == 2 * dim:
                    owners.append(aid)
                    blobs.append(blob)
        if not blobs:
            return {}
        sims = (stack_blobs(blobs, dim) @ qvec).tolist()
        best: dict[int, float] = {}
        for aid, sim in zip(owners, sims, strict=True):
            if sim > best.get(aid, -2.0):
                best[aid] = sim
        return best

    # -- public API ----------------------------------------------------------------------------
    def search(self, query: str, flt: ArticleFilter = ArticleFilter(), *, limit: int = 20) -> list[SearchHit]:
        """The best ``limit`` articles for ``query`` (newest first when the query is empty)."""
        limit = max(0, int(limit))
        if limit == 0:
            return []
        if not query.strip():
            return self._recent(flt, limit)
        if not any(ch.isalnum() for ch in query[:2000]):
            return []
        ranking = self._rank(query, flt, limit=limit, mode="hybrid")
        return self._hits(ranking)

    def _recent(self, flt: ArticleFilter, limit: int) -> list[SearchHit]:
        articles = self.store.list_articles(flt, limit=limit)
        now = time.time()
        half_life = max(self.fusion.half_life_days, 1e-6) * DAY
        hits: list[SearchHit] = []
        for art in articles:
            age = max(0.0, now - art.published.timestamp())
            r = math.exp(-age * math.log(2) / half_life)
            why: dict[str, float | int | None] = {
                "bm25_rank": None,
                "dense_rank": None,
                "bm25": None,
                "dense": None,
                "recency": round(r, 6),
                "fused": round(r, 6),
            }
            hits.append(SearchHit(art, r, "", why))
        return hits

    def _hits(self, ranking: _Ranking) -> list[SearchHit]:
        if not ranking.ids:
            return []
        articles = self.store.articles_by_ids(ranking.ids)
        contexts = self._contexts(ranking.ids, ranking.qvec, ranking.terms, ranking.passages)
        hits: list[SearchHit] = []
        for aid, why in zip(ranking.ids, ranking.why, strict=True):
            art = articles.get(aid)
            if art is None:  # deleted since ranking
                continue
            hits.append(SearchHit(art, float(why["fused"] or 0.0), contexts.get(aid, ""), why))
        return hits

    def related(self, article_id: int, *, limit: int = 10) -> list[SearchHit]:
        """Articles nearest to ``article_id`` by vector (BM25 on its title without one)."""
        limit = max(0, int(limit))
        texts = self.store.bodies([article_id])
        if article_id not in texts or limit == 0:
            return []
        title = texts[article_id][0]
        own = title_key(title)
        vec: Vector | None = None
        view = self._vectors() if self.embedder is not None else None
        if view is not None:
            rows = _rows_of(view.ids, np.asarray([article_id], dtype=np.int64))
            if len(rows):
                vec = view.row(int(rows[0]))
        pairs: list[tuple[int, dict[str, float | int | None]]] = []
        if vec is None or view is None:
            ranking = self._rank(title, ArticleFilter(), limit=limit + 20, mode="bm25")
            pairs = list(zip(ranking.ids, ranking.why, strict=True))
        else:
            top_rows, top_scores = view.top(view.prepare(vec), limit * 3 + 10)
            for r, (aid, s) in enumerate(
                zip(view.ids[top_rows].tolist(), top_scores.tolist(), strict=True), 1
            ):
                why: dict[str, float | int | None] = {
                    "bm25_rank": None,
                    "dense_rank": r,
                    "bm25": None,
                    "dense": round(s, 6),
                    "recency": 0.0,
                    "fused": round(s, 6),
                }
                pairs.append((aid, why))
        candidates = [aid for aid, _ in pairs if aid != article_id]
        titles = {i: title_key(t[0]) for i, t in self.store.titles(candidates).items()}
        if self.store.mutes.active():  # the reader's mute rules hide related articles too
            muted = self.store.mutes.muted_by(candidates)
            titles = {i: t for i, t in titles.items() if i not in muted}
        seen = {own}
        chosen: list[tuple[int, dict[str, float | int | None]]] = []
        for aid, why in pairs:
            t = titles.get(aid)
            if aid == article_id or t is None or t in seen:
                continue
            seen.add(t)
            chosen.append((aid, why))
            if len(chosen) >= limit:
                break
        recency = self._recency([a for a, _ in chosen], time.time())
        for aid, why in chosen:
            why["recency"] = round(recency.get(aid, 0.0), 6)
        return self._hits(_Ranking([a for a, _ in chosen], [w for _, w in chosen], vec, query_terms(title)))

    # -- contexts -----------------------------------------------------------------------------
    @staticmethod
    def _lexical_chunks(
        text: str, stems: frozenset[str], skip: int, candidates: Sequence[tuple[float, str]]
    ) -> list[tuple[float, str]]:
        """Chunks of ``text`` after the first ``skip`` (the embedded passages) that compete on
        query-term overlap.

        Nothing after the last query term can win, so the caller cuts the text there; and
        the first chunk holding every query term wins outright (later ones only tie at best
        and the earlier is preferred), so scanning stops at it.
        """
        out: list[tuple[float, str]] = []
        base = 0.0 if candidates else 0.3
        for pos, chunk in enumerate(itertools.islice(_iter_chunks(text), skip, None)):
            ov = _overlap(chunk, stems)
            if ov > 0 or (pos == 0 and not candidates):
                out.append((base + 0.3 * ov - 0.001 * pos, chunk))
            if ov >= 1.0:
                break
        return out

    def _contexts(
        self,
        ids: Sequence[int],
        qvec: Vector | None,
        terms: Sequence[str],
        passages: dict[int, list[tuple[str, bytes]]] | None = None,
    ) -> dict[int, str]:
        stems = usable_stems(terms)
        texts = self.store.bodies(ids)
        stored: dict[int, list[tuple[str, bytes]]] = {}
        if passages is not None:
            stored = passages
        elif qvec is not None and self.embedder is not None:
            stored = self.store.load_passages(self.embedder.name, ids)
        out: dict[int, str] = {}
        for aid in ids:
            if aid not in texts:
                continue
            title, excerpt, body = texts[aid]
            lead = _lead_text(excerpt, body)
            candidates: list[tuple[float, str]] = []
            found = stored.get(aid, [])
            if found and qvec is not None:
                assert self._index is not None
                dim = self._index.dim
                usable = [(t, b) for t, b in found if len(b) == 2 * dim]
                if usable:
                    sims = (stack_blobs([b for _, b in usable], dim) @ qvec).tolist()
                    for (t, _), s in zip(usable, sims, strict=True):
                        candidates.append((s + 0.3 * _overlap(t, stems), t))
            last = _last_possible_match(lead[:CONTEXT_SCAN_CHARS], stems) if stems else None
            if last is not None:
                candidates.extend(
                    self._lexical_chunks(lead[: last + 2 * PASSAGE_CHARS], stems, len(found), candidates)
                )
            if not candidates and lead:
                first = _chunk(lead[: PASSAGE_CHARS * 4], limit=1)
                candidates = [(0.0, first[0])] if first else []
            if not candidates:
                candidates = [(0.0, title)]
            best = max(candidates, key=lambda c: c[0])[1]
            out[aid] = mark(_clip(best, stems), stems)
        return out
