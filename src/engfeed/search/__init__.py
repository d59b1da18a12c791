"""Context Search: hybrid lexical + dense ranking with explainable scores and contexts.

How a query is answered (:meth:`SearchEngine.search`):

1. **Dense.** The query is embedded once (memoised; a dynamic-int8 build of the model
   makes that ~4 ms, see :mod:`engfeed.embed`) and scored against an in-memory
   float32 matrix of every article vector of the current model: one matrix-vector
   product plus ``argpartition``, exact. (From ``IndexTuning.approx_min_rows`` vectors on,
   a two-stage scan in a PCA basis keeps 1M articles inside the latency budget; see
   :class:`~engfeed.search.vectors.VectorView`.) The matrix is loaded lazily from the store and
   topped up incrementally when another thread or process saves vectors (a
   per-connection change marker makes the "anything new?" check nearly free). Filters
   restrict the rows *before* ranking.
2. **Lexical.** The query becomes a safe FTS5 expression (:mod:`engfeed.query`): all terms
   (``AND``) first, any term (``OR``) when that finds too few; BM25 over title, excerpt
   and body, at most ``bm25_depth`` candidates. Only the newest ``SearchTuning.lexical_window`` matches
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
One concept per module:

* :mod:`~engfeed.search.passages`: what is embedded per article (document text, passages);
* :mod:`~engfeed.search.highlight`: query-term stems, clipping and ``<mark>``;
* :mod:`~engfeed.search.vectors`: the in-memory vector index and its scans;
* :mod:`~engfeed.search.engine`: fusion, :class:`SearchEngine` and its tuning.
"""

from __future__ import annotations

from engfeed.search.engine import DEFAULT_FUSION, DEFAULT_TUNING, Fusion, Mode, SearchEngine, SearchTuning
from engfeed.search.highlight import mark, usable_stems
from engfeed.search.passages import document_text, has_passages, passages_of
from engfeed.search.vectors import IndexTuning

__all__ = [
    "DEFAULT_FUSION",
    "DEFAULT_TUNING",
    "Fusion",
    "IndexTuning",
    "Mode",
    "SearchEngine",
    "SearchTuning",
    "document_text",
    "has_passages",
    "mark",
    "passages_of",
    "usable_stems",
]
