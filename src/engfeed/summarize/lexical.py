"""A lexical stand-in for the sentence model: TF-IDF vectors hashed into a fixed width.

Used when embeddings are off (``ENGFEED_EMBED=0``), so summaries still work with no model
loaded; IDF comes from the article's own sentences. Rows are unit-norm float32, as the
:class:`~engfeed.embed.Embedder` protocol requires. Weaker than MiniLM on paraphrase (the LLM
grounding threshold is calibrated for MiniLM), fine for choosing an article's own sentences.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from engfeed.embed import Matrix, Vector

if TYPE_CHECKING:
    from engfeed.summarize.document import Document

DIM = 4096
_WORD = re.compile(r"[a-z0-9][a-z0-9+#.-]*[a-z0-9+#]|[a-z0-9]")
_STOP_WORDS = (
    "a an the and or but if of to in on at by for with from as is are was were be been being "
    "it its this that these those we our us you your they their them he she his her i me my "
    "not no so than then there here which who whom what when where why how all any each more "
    "most other some such can could will would should may might do does did done has have had "
    "also into over under about after before between "
)
_STOP = frozenset(_STOP_WORDS.split())


def tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


class LexicalEmbedder:
    name = "lexical-tfidf-hash"
    dim = DIM

    def __init__(self, idf: dict[str, float], default_idf: float) -> None:
        self._idf = idf
        self._default = default_idf

    @classmethod
    def for_document(cls, doc: Document) -> LexicalEmbedder:
        return cls.from_texts(doc.sentences)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> LexicalEmbedder:
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            n += 1
            df.update(set(tokens(text)))
        idf = {w: math.log((n + 1) / (c + 1)) + 1 for w, c in df.items()}
        return cls(idf, math.log(n + 1) + 1)

    def embed(self, texts: Sequence[str]) -> Matrix:
        out = np.zeros((len(texts), DIM), np.float32)
        for row, text in enumerate(texts):
            for word, count in Counter(tokens(text)).items():
                col = zlib.crc32(word.encode()) % DIM
                out[row, col] += (1 + math.log(count)) * self._idf.get(word, self._default)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1
        result: Matrix = (out / norms).astype(np.float32)
        return result

    def embed_query(self, text: str) -> Vector:
        row: Vector = self.embed([text])[0]
        return row
