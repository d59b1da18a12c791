"""Hybrid search, related articles and embedding upkeep over one store (see the package
docstring for how a query is answered)."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar, cast

import numpy as np
import numpy.typing as npt

from engfeed import config
from engfeed.embed import Embedder, stack_blobs, to_blob
from engfeed.errors import QueryError
from engfeed.models import ArticleFilter, ScoreBreakdown, SearchHit
from engfeed.query import fts_match, query_terms
from engfeed.search.highlight import clip, last_possible_match, mark, overlap, usable_stems
from engfeed.search.passages import (
    PASSAGE_CHARS,
    document_text,
    first_chunks,
    has_passages,
    iter_chunks,
    lead_text,
    passages_of,
)
from engfeed.search.vectors import (
    DatabaseIndex,
    DatabaseVectors,
    DatabaseView,
    IndexTuning,
    VectorIndex,
    VectorView,
    rows_of,
)
from engfeed.store import Store
from engfeed.text import title_key

__all__ = ["DEFAULT_FUSION", "DEFAULT_TUNING", "Fusion", "Mode", "SearchEngine", "SearchTuning"]

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
Progress = Callable[[int, int], None]
Mode = Literal["hybrid", "bm25", "dense"]
_T = TypeVar("_T")
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class SearchTuning:
    """Cost bounds of search and indexing, each a measured trade-off. Tests pass smaller
    values to reach the big-store paths on small stores."""

    #: Unfiltered full-text queries score at most the newest this many matches (see
    #: ``Store.fts_search``): a common term over 100k articles has 10-20k matches and cost
    #: 15-30 ms to score in full, a window of 1000 ~2 ms. The dense side still sees every
    #: article. On the relevance corpus (8.8k articles) the AND window never binds, even at 500.
    lexical_window: int = 1000
    #: The same for the OR fallback. Its matches are many more: on the relevance corpus a
    #: window of 1000 already costs hybrid nDCG@10 0.005 (BM25 alone 0.004), 2000 nothing.
    or_window: int = 2000
    #: Work cap of a filtered OR fallback, in SQLite VM steps (~0.1 ms per 1000 here): a broad
    #: OR over 100k+ articles scores tens of thousands of matches (30-250 ms) for little gain.
    or_max_steps: int = 100_000
    #: From this many vectors on, the full-text query runs on a worker thread in parallel with
    #: the dense side. At 100k an interleaved A/B (bench stores, 300 queries each way) showed
    #: no difference on 2 cores, so smaller stores keep one thread; at 1M, where FTS alone
    #: costs 20-60 ms, the overlap pays.
    parallel_lexical_min_rows: int = 500_000
    #: Query vectors kept per engine (paging and filtering re-run a query).
    query_cache: int = 256
    #: Characters of an article scanned for lexical contexts.
    context_scan_chars: int = 20_000
    #: Articles embedded per batch; each batch is saved in its own short transaction.
    embed_batch: int = 32
    #: The vector index's layout and scans.
    index: IndexTuning = field(default_factory=IndexTuning)


DEFAULT_TUNING = SearchTuning()


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
    why: list[ScoreBreakdown]
    qvec: Vector | None
    terms: list[str]
    passages: dict[int, list[tuple[str, bytes]]] | None = None  # None: not loaded


class SearchEngine:
    """Hybrid search, related articles and embedding upkeep over one store."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder | None,
        *,
        fusion: Fusion = DEFAULT_FUSION,
        tuning: SearchTuning = DEFAULT_TUNING,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.fusion = fusion
        self.tuning = tuning
        self._index: VectorIndex | DatabaseIndex | None = None
        if embedder is not None:
            if getattr(store, "vector_search", False) and config.vectors_in_database():  # pgvector
                self._index = DatabaseIndex(cast("DatabaseVectors", store), embedder.dim, self._stored_vector)
            else:
                self._index = VectorIndex(embedder.dim, tuning.index)
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
        self.prepare_store()
        return count

    def prepare_store(self) -> None:
        """After indexing: where the store searches its own vectors (PostgreSQL with
        pgvector), fill their searchable copies and build its ANN index once it is big
        enough (seconds to a minute: here, never inside a search). Nothing otherwise."""
        if isinstance(self._index, DatabaseIndex):
            self._index.prepare_store()

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
        return self.embed_documents(self.store.vectors.missing(self.embedder.name), progress)

    def embed_documents(
        self, ids: Sequence[int], progress: Progress | None = None, *, patch: bool = False
    ) -> int:
        """The first pass: document vectors of ``ids``; those with passages are marked
        pending (their old passages go, see ``VectorsPart.save_documents``).

        With ``patch`` the rows of this process's in-memory index are replaced too: a
        replaced vector changes neither the count nor the highest id, so the index could
        not notice it by itself."""
        if self.embedder is None or not ids:
            return 0
        model = self.embedder.name
        total, done = len(ids), 0
        for start in range(0, total, self.tuning.embed_batch):
            batch = list(ids[start : start + self.tuning.embed_batch])
            texts = self.store.bodies(batch)
            present = [i for i in batch if i in texts]
            # Model work happens outside any transaction; each save is one short write.
            vecs = self.embedder.embed([document_text(*texts[i]) for i in present])
            self.store.vectors.save_documents(
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
        tokens = self.store.vectors.pending(model)  # read before the texts: see save_passages
        ids = list(tokens)
        total, done = len(ids), 0
        for start in range(0, total, self.tuning.embed_batch):
            batch = ids[start : start + self.tuning.embed_batch]
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
            self.store.vectors.save_passages(model, items, pending=tokens)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        return done

    # -- helpers ---------------------------------------------------------------------------
    @property
    def vectors_in_database(self) -> bool:
        """Whether concept search runs in the database (PostgreSQL with pgvector) rather than
        in this process's index."""
        return isinstance(self._index, DatabaseIndex)

    def _stored_vector(self, model: str, article_id: int) -> bytes | None:
        return self.store.vectors.of(model, [article_id]).get(article_id)

    def _vectors(self) -> VectorView | DatabaseView:
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
            while len(self._qcache) > self.tuning.query_cache:
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
        rows = rows_of(ids, wanted)
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
            hits = (
                self.store.fts_search(expr, flt, limit=depth, window=self.tuning.lexical_window)
                if expr
                else []
            )
            if len(hits) >= self.fusion.and_min_hits or len(terms) == 1:
                return hits, len(hits)
            expr = fts_match(text, mode="or")
            wider = (
                self.store.fts_search_bounded(
                    expr, flt, limit=depth, max_steps=self.tuning.or_max_steps, window=self.tuning.or_window
                )
                if expr
                else []
            )
            if wider is None:  # too broad to score within budget: the AND hits (and dense) decide
                log.debug("OR fallback over budget for %r", text[:100])
                wider = []
        except QueryError as exc:  # never let a query string break search
            log.warning("full-text query failed for %r: %s", text[:100], exc)
            return [], 0
        seen = {i for i, _ in hits}
        return hits + [(i, s) for i, s in wider if i not in seen][: max(0, depth - len(hits))], len(hits)

    def _recency(
        self, ids: Sequence[int], now: float, view: VectorView | DatabaseView | None = None
    ) -> dict[int, float]:
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
    ) -> list[tuple[int, float, ScoreBreakdown]]:
        """Ranked ``(article id, score, why)`` without loading articles or contexts."""
        ranking = self._rank(query, flt, limit=limit, mode=mode)
        return [(i, w.fused, w) for i, w in zip(ranking.ids, ranking.why, strict=True)]

    def _rank(self, query: str, flt: ArticleFilter, *, limit: int, mode: Mode) -> _Ranking:
        fz = self.fusion
        text = query[:2000].replace("\x00", " ")
        terms = query_terms(text)
        use_dense = mode != "bm25" and self.embedder is not None
        use_lexical = mode != "dense" or not use_dense
        view: VectorView | DatabaseView | None = self._vectors() if use_dense else None
        # Lexical side. On a big index it runs on a worker thread while the query is embedded
        # and scanned (SQLite, numpy and onnxruntime release the GIL); below that the overlap
        # measured no gain on 2 cores (see SearchTuning.parallel_lexical_min_rows).
        lexical: list[tuple[int, float]] = []
        n_all = 0
        pending: Future[tuple[list[tuple[int, float]], int]] | None = None
        if use_lexical and terms:
            depth = max(fz.bm25_depth, limit)
            if view is not None and len(view) >= self.tuning.parallel_lexical_min_rows:
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
            extra_rows = rows_of(view.ids, np.asarray([i for i in bm25 if i not in dense], dtype=np.int64))
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
            passages = self.store.vectors.passages(self.embedder.name, cands)
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
        whys = [
            ScoreBreakdown.of(
                bm25_rank=bm25_rank.get(aid),
                dense_rank=dense_rank.get(aid),
                bm25=b,
                dense=d,
                recency=rec,
                fused=fused,
            )
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
            hits.append(SearchHit(art, r, "", ScoreBreakdown.of(recency=r, fused=r)))
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
            hits.append(SearchHit(art, why.fused, contexts.get(aid, ""), why))
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
            rows = rows_of(view.ids, np.asarray([article_id], dtype=np.int64))
            if len(rows):
                vec = view.row(int(rows[0]))
        pairs: list[tuple[int, ScoreBreakdown]] = []
        if vec is None or view is None:
            ranking = self._rank(title, ArticleFilter(), limit=limit + 20, mode="bm25")
            pairs = list(zip(ranking.ids, ranking.why, strict=True))
        else:
            top_rows, top_scores = view.top(view.prepare(vec), limit * 3 + 10)
            for r, (aid, s) in enumerate(
                zip(view.ids[top_rows].tolist(), top_scores.tolist(), strict=True), 1
            ):
                pairs.append((aid, ScoreBreakdown.of(dense_rank=r, dense=s, fused=s)))
        candidates = [aid for aid, _ in pairs if aid != article_id]
        titles = {i: title_key(t[0]) for i, t in self.store.titles(candidates).items()}
        if self.store.mutes.active():  # the reader's mute rules hide related articles too
            muted = self.store.mutes.muted_by(candidates)
            titles = {i: t for i, t in titles.items() if i not in muted}
        seen = {own}
        chosen: list[tuple[int, ScoreBreakdown]] = []
        for aid, why in pairs:
            t = titles.get(aid)
            if aid == article_id or t is None or t in seen:
                continue
            seen.add(t)
            chosen.append((aid, why))
            if len(chosen) >= limit:
                break
        recency = self._recency([a for a, _ in chosen], time.time())
        whys = [replace(w, recency=round(recency.get(aid, 0.0), 6)) for aid, w in chosen]
        return self._hits(_Ranking([a for a, _ in chosen], whys, vec, query_terms(title)))

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
        for pos, chunk in enumerate(itertools.islice(iter_chunks(text), skip, None)):
            ov = overlap(chunk, stems)
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
            stored = self.store.vectors.passages(self.embedder.name, ids)
        out: dict[int, str] = {}
        for aid in ids:
            if aid not in texts:
                continue
            title, excerpt, body = texts[aid]
            lead = lead_text(excerpt, body)
            candidates: list[tuple[float, str]] = []
            found = stored.get(aid, [])
            if found and qvec is not None:
                assert self._index is not None
                dim = self._index.dim
                usable = [(t, b) for t, b in found if len(b) == 2 * dim]
                if usable:
                    sims = (stack_blobs([b for _, b in usable], dim) @ qvec).tolist()
                    for (t, _), s in zip(usable, sims, strict=True):
                        candidates.append((s + 0.3 * overlap(t, stems), t))
            last = last_possible_match(lead[: self.tuning.context_scan_chars], stems) if stems else None
            if last is not None:
                candidates.extend(
                    self._lexical_chunks(lead[: last + 2 * PASSAGE_CHARS], stems, len(found), candidates)
                )
            if not candidates and lead:
                first = first_chunks(lead[: PASSAGE_CHARS * 4], limit=1)
                candidates = [(0.0, first[0])] if first else []
            if not candidates:
                candidates = [(0.0, title)]
            best = max(candidates, key=lambda c: c[0])[1]
            out[aid] = mark(clip(best, stems), stems)
        return out
