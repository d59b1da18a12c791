"""The in-memory vector index: every article vector of one model, and the one place they
are scored (exact, or two-stage in a PCA basis for big indexes)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engfeed.embed import stack_blobs
from engfeed.store import Store

__all__ = ["IndexTuning", "VectorIndex", "VectorView", "pca_rotation", "rows_of", "top_k"]

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
HalfMatrix = npt.NDArray[np.float16]


@dataclass(frozen=True, slots=True)
class IndexTuning:
    """How the index is laid out and scanned. Tests pass small values to reach the big-index
    paths with a few thousand vectors."""

    #: From this many vectors on, dense top-k is two-stage (see ``VectorView``); below, exact.
    approx_min_rows: int = 50_000
    #: Leading PCA components scored in the first stage, and rows it hands to exact scoring
    #: (at least this many, and at least 1% of the rows). Measured on bench/search.py's
    #: stores (vectors fitted to MiniLM's): 64 components and 2000 candidates keep recall@20
    #: at 1.000 and recall@100 at 0.999 (at 1M: 10k candidates, 0.9997) while scanning half
    #: the bytes of 128 (100k: 8.5 -> 5.5 ms; 1M: 62 -> 40 ms p50).
    head_dims: int = 64
    approx_candidates: int = 2000
    #: Rows read from the store per page when (re)loading. Each page passes through Python
    #: bytes, a float32 block and its rotation: at 50k rows that peaked 180 MB above the
    #: loaded index (100k vectors: 566 vs 390 MB peak RSS at 10k), for no speed gain.
    load_page: int = 10_000


DEFAULT_INDEX_TUNING = IndexTuning()


@dataclass(frozen=True, slots=True)
class VectorView:
    """A consistent snapshot of the vector index, and the one place vectors are scored.

    Rows are stored as two contiguous blocks, ``head`` (the first ``split`` coordinates)
    and ``tail`` (the rest), so that the head alone can be scanned at full memory speed.
    Below ``IndexTuning.approx_min_rows`` rows ``split`` is the full dimension and scoring is exact:
    one matrix-vector product. From there on rows are stored in a PCA basis (``rotation``:
    orthonormal, so dot products are unchanged) split after ``IndexTuning.head_dims`` components, and
    the top-k is found in two stages: the head (the bulk of the variance of real
    embeddings) picks ``IndexTuning.approx_candidates`` rows, whose exact scores then decide. Only
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
    tuning: IndexTuning = DEFAULT_INDEX_TUNING

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
        """Scores of ``rows`` (all rows when None; only below ``approx_min_rows``, where
        there is no tail, is that cheap)."""
        k = self.split
        if rows is None:
            out: npt.NDArray[np.float32] = self.head @ qr[:k]
            if self.tail.shape[1]:
                out += half_scores(self.tail, qr[k:])
            return out
        out = self.head[rows] @ qr[:k]
        if self.tail.shape[1]:
            out += half_scores(self.tail[rows], qr[k:])
        return out

    def top(
        self, qr: Vector, k: int, rows: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The best ``k`` rows (of ``rows``, or of all) for prepared query ``qr``, best first."""
        n = len(self.ids) if rows is None else len(rows)
        if n == 0 or k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        if self.rotation is not None and n >= self.tuning.approx_min_rows:
            coarse = self.head @ qr[: self.split]
            if rows is not None:
                coarse = coarse[rows]
            want = max(self.tuning.approx_candidates, n // 100, 4 * k)
            # Unordered candidates, in row order (a sequential gather for the exact scores).
            pick = np.sort(np.argpartition(coarse, n - want)[n - want :]) if want < n else np.arange(n)
            cand = pick if rows is None else rows[pick]
            exact = self.scores(qr, cand)
            order = top_k(exact, k)
            return cand[order], exact[order]
        if rows is None:
            full = self.scores(qr)
            order = top_k(full, k)
            return order, full[order]
        gather = 4 * n < len(self.ids) or self.tail.shape[1] > 0  # never scan a whole tail
        sub = self.scores(qr, rows) if gather else self.scores(qr)[rows]
        order = top_k(sub, k)
        return rows[order], sub[order]


def half_scores(block: HalfMatrix, q: Vector) -> npt.NDArray[np.float32]:
    """``block @ q`` for float16 rows, in float32 (converted in slices: no full copy)."""
    out = np.empty(len(block), dtype=np.float32)
    step = 8192
    for lo in range(0, len(block), step):
        out[lo : lo + step] = block[lo : lo + step].astype(np.float32) @ q
    return out


def release_freed_memory() -> None:
    """Hand memory freed by a big load back to the OS (glibc keeps it otherwise).

    Loading 100k vectors leaves ~60-80 MB of freed pages in glibc's heap (the rows pass
    through Python bytes objects); ``malloc_trim`` returns them. A no-op elsewhere.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:  # the C library this process already uses; find_library may not know it
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return trim


def pca_rotation(sample: Matrix) -> Matrix:
    """Orthonormal basis of the sample's principal directions, strongest first (uncentred)."""
    gram = sample.T.astype(np.float64) @ sample.astype(np.float64)
    _, vecs = np.linalg.eigh(gram)
    out: Matrix = np.ascontiguousarray(vecs[:, ::-1]).astype(np.float32)
    return out


class VectorIndex:
    """All vectors of one model as float32 rows sorted by article id (see :class:`VectorView`).

    Appends go into spare capacity so readers holding an older :class:`VectorView` are never
    disturbed; a reload or the switch to the PCA basis swaps in new arrays.
    """

    def __init__(self, dim: int, tuning: IndexTuning = DEFAULT_INDEX_TUNING) -> None:
        self.dim = dim
        self.tuning = tuning
        self._lock = threading.Lock()
        self._local = threading.local()
        self._n = 0
        self._max_id = 0
        self.generation = 0
        self._reset()

    def snapshot(self) -> VectorView:
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
        self._view = VectorView(
            self._ids[:0], self._head[:0], self._tail[:0], self._pub[:0], rotation, self.tuning
        )
        self.generation += 1

    def refresh(self, store: Store, model: str) -> None:
        marker = store.change_marker()
        if getattr(self._local, "marker", None) == marker:
            return
        count, max_id = store.vectors.stats(model)
        with self._lock:
            if (count, max_id) != (self._n, self._max_id):
                if self._n and count > self._n and max_id > self._max_id:
                    self._load_after(store, model)
                if (count, max_id) != (self._n, self._max_id):
                    # First load, or deletions / replacements below max id / model change.
                    # A big index is rotated page by page as it loads (no second copy).
                    rotation = (
                        self._sample_rotation(store, model) if count >= self.tuning.approx_min_rows else None
                    )
                    split = self.tuning.head_dims if rotation is not None else None
                    self._reset(rotation, split, capacity=count + count // 8 + 1024)
                    self._load_after(store, model)
                    release_freed_memory()
            if self._rotation is None and self._n >= self.tuning.approx_min_rows:
                self._rotate()  # grew past the threshold by appends: rotate once
        self._local.marker = marker

    def _sample_rotation(self, store: Store, model: str) -> Matrix:
        _, blobs, _ = store.vectors.load_after(model, 0, limit=20_000)
        good = [b for b in blobs if len(b) == 2 * self.dim]
        return pca_rotation(stack_blobs(good, self.dim))

    def _rotate(self) -> None:
        """Switch to the PCA basis (once the index is big enough for two-stage search)."""
        n, split = self._n, min(self.tuning.head_dims, self.dim)
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
        for lo in range(0, n, self.tuning.load_page):
            hi = min(n, lo + self.tuning.load_page)
            block = np.concatenate([view.head[lo:hi], view.tail[lo:hi].astype(np.float32)], axis=1) @ rotation
            head[lo:hi], tail[lo:hi] = block[:, :split], block[:, split:]
        self._ids, self._pub, self._head, self._tail, self._rotation = ids, pub, head, tail, rotation
        self._view = VectorView(ids[:n], head[:n], tail[:n], pub[:n], rotation, self.tuning)
        self.generation += 1

    def patch(self, ids: npt.NDArray[np.int64], vectors: Matrix) -> None:
        """Overwrite the rows of ``ids`` that are loaded (others arrive through refresh)."""
        with self._lock:
            view = self._view
            rows = rows_of(view.ids, ids)
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
            ids, blobs, published = store.vectors.load_after(model, self._max_id, limit=self.tuning.load_page)
            if not ids:
                return
            last, complete = ids[-1], len(ids) < self.tuning.load_page
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
        self._view = VectorView(
            self._ids[:need],
            self._head[:need],
            self._tail[:need],
            self._pub[:need],
            self._rotation,
            self.tuning,
        )
        self.generation += 1


def rows_of(ids: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Row numbers of the ``wanted`` article ids that have a row (sorted ``ids``)."""
    if len(ids) == 0 or len(wanted) == 0:
        return np.empty(0, dtype=np.int64)
    pos = np.searchsorted(ids, wanted)
    pos = np.minimum(pos, len(ids) - 1)
    hit = ids[pos] == wanted
    rows: npt.NDArray[np.int64] = pos[hit].astype(np.int64)
    return rows


def top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Indices of the ``k`` largest scores, best first."""
    n = len(scores)
    if n == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    order: npt.NDArray[np.int64] = part[np.argsort(-scores[part], kind="stable")].astype(np.int64)
    return order


# -- concept search in the database (PostgreSQL with pgvector) --------------------------------
class DatabaseVectors(Protocol):
    """What a store that searches its own vectors offers (engfeed.store.postgres)."""

    def sync_vectors(self, dim: int) -> int: ...

    def build_vector_index(self, dim: int) -> bool: ...

    def vector_ids(self, model: str) -> tuple[list[int], list[int]]: ...

    def nearest(
        self, model: str, query: Sequence[float], k: int, ids: Sequence[int] | None = None
    ) -> list[tuple[int, float]]: ...

    def similarity(self, model: str, query: Sequence[float], ids: Sequence[int]) -> dict[int, float]: ...


@dataclass(frozen=True)
class DatabaseView:
    """:class:`VectorView`'s interface over vectors that stay in the database: only the ids
    and publish times are here (16 bytes an article, against ~1.5 KB for a vector), and
    every score comes from the server. Rows are positions in ``ids``, as in VectorView."""

    ids: npt.NDArray[np.int64]
    published: npt.NDArray[np.int64]
    store: DatabaseVectors
    model: str
    dim: int
    blob_of: Callable[[int], bytes | None]

    def __len__(self) -> int:
        return len(self.ids)

    def prepare(self, q: Vector) -> Vector:
        return q

    def row(self, r: int) -> Vector:
        blob = self.blob_of(int(self.ids[r]))
        if blob is None or len(blob) != 2 * self.dim:
            return np.zeros(self.dim, dtype=np.float32)
        out: Vector = stack_blobs([blob], self.dim)[0]
        return out

    def scores(self, qr: Vector, rows: npt.NDArray[np.int64] | None = None) -> npt.NDArray[np.float32]:
        wanted = self.ids if rows is None else self.ids[rows]
        found = self.store.similarity(self.model, qr.tolist(), wanted.tolist())
        return np.asarray([found.get(int(i), -1.0) for i in wanted], dtype=np.float32)

    def top(
        self, qr: Vector, k: int, rows: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        if k <= 0 or len(self.ids) == 0 or (rows is not None and len(rows) == 0):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        subset = None if rows is None else self.ids[rows].tolist()
        pairs = self.store.nearest(self.model, qr.tolist(), k, subset)
        found = rows_of(self.ids, np.asarray([aid for aid, _ in pairs], dtype=np.int64))
        known = {int(self.ids[r]) for r in found}
        scores = [s for aid, s in pairs if aid in known]
        return found, np.asarray(scores, dtype=np.float32)


class DatabaseIndex:
    """:class:`VectorIndex`'s interface for a store that searches its own vectors: a refresh
    fills the store's vector column where it is empty and reloads the ids (when the store
    changed); a snapshot is a :class:`DatabaseView`."""

    def __init__(self, store: DatabaseVectors, dim: int, blob_of: Callable[[str, int], bytes | None]) -> None:
        self.dim = dim
        self.generation = 0
        self._store = store
        self._blob_of = blob_of
        self._lock = threading.Lock()
        self._marker: tuple[int, int] | None = None
        self._stats: tuple[int, int] | None = None  # (count, max id) the view was loaded at
        self._view: DatabaseView | None = None

    def refresh(self, store: Store, model: str) -> None:
        marker = store.change_marker()
        with self._lock:
            if marker == self._marker and self._view is not None and self._view.model == model:
                return
            filled = self._store.sync_vectors(self.dim)
            stats = store.vectors.stats(model)
            if not filled and self._view is not None and self._view.model == model and stats == self._stats:
                self._marker = marker  # another write: the searchable vectors did not change
                return
            self._stats = stats
            ids, published = self._store.vector_ids(model)
            self._view = DatabaseView(
                np.asarray(ids, dtype=np.int64),
                np.asarray(published, dtype=np.int64),
                self._store,
                model,
                self.dim,
                lambda aid: self._blob_of(model, aid),
            )
            self._marker = store.change_marker()  # after the sync's own writes
            self.generation += 1

    def snapshot(self) -> DatabaseView:
        assert self._view is not None, "refresh() first"
        return self._view

    def prepare_store(self) -> None:
        """After indexing: fill the store's vector column, and build its ANN index once the
        store is big enough (minutes at 100k: here, never inside a search)."""
        self._store.sync_vectors(self.dim)
        self._store.build_vector_index(self.dim)

    def patch(self, ids: npt.NDArray[np.int64], vecs: Matrix) -> None:
        """Nothing to do: the next refresh fills the column from the stored vectors."""

    def invalidate(self) -> None:
        with self._lock:
            self._marker = None
