"""The learned part of the angle labeller: one logistic head per bundled angle.

Each head is trained (``bench/relevance/angle_model.py``) on the judged angle set of
``bench/relevance/data/angle-set`` - its train split and the extra training set, never its
test split - and shipped as ``data/angle-model.json``. Its features are what labelling
already has at hand, so it costs a few dot products per article:

* the article's document vector (the search index's, unit length);
* which words and two-word phrases of a trained vocabulary occur in the title, and which in
  the text (two sets of binary features, so a cue in the title weighs differently);
* log(1 + words of text): title-only items rarely earn an angle;
* the text's style (:data:`STYLE`): code-like tokens, numbers with units, how much it says
  "we"/"our", a title that starts "How"/"Why"/..., and whether it is title-only;
* the angle's own cue evidence from ``angles.toml``: log(1 + strength) and a cue in the title.

``probability = sigmoid(w . x + b)``; the head accepts at its ``threshold``, chosen by
cross-validation on the training articles for precision. A head applies only to the angle it
was trained for - the same name, description, guideline and cue terms (``definition``) - and
only to vectors of the model it was trained with. A reader's own angle, or a bundled one they
edited, has no head and is labelled by the prototype rule in :mod:`engfeed.angles` (the cold
start).

Evidence stays in the text: the words that pushed a head up (weight x presence, largest
first, leaving out words too common to say anything, like "use" or "system") are the "via ..."
terms next to the cue terms found, and a head with no such word and no cue term gives no angle
("no evidence, no angle").
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engfeed.query import STOPWORDS

if TYPE_CHECKING:
    from engfeed.angles import Angle

__all__ = ["AngleHead", "AngleModel", "CompiledHeads", "Tokens", "definition_hash", "tokens"]

Matrix = npt.NDArray[np.float32]

MODEL_RESOURCE = "data/angle-model.json"
#: Words of an article's text that count (the start says what it is about).
TEXT_WORDS = 400
#: Characters of text read for the length and style features (about 2,000 words): enough to
#: tell a long post, and labelling stays under a millisecond an article.
SCAN_CHARS = 12_000
#: Scale of each feature group, the same in training and labelling.
VECTOR_SCALE = 4.0
WORD_SCALE = 0.5
LENGTH_SCALE = 1 / 3
#: A word is evidence for a head when its weight reaches this. At 0.15, 67 of the corpus's 843
#: labels rested on words such as "article", "things" or "based" alone; at 0.3 none does.
MIN_EVIDENCE = 0.3

_WORD = re.compile(r"[a-z][a-z0-9+#]*(?:[.\-][a-z0-9+#]+)*")
_CODE = re.compile(r"\b[a-z]+[A-Z][A-Za-z]+\b|\b\w+_\w+\b|\w\(\)|[{};]|=>|::")
_UNIT = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|%|x|gb|mb|tb|k|m|s|µs|ns|qps|rps)\b", re.IGNORECASE)
_WE = re.compile(r"\b(?:we|our)\b", re.IGNORECASE)
_HOW = ("how", "why", "building", "scaling", "inside", "under the hood")
#: The style features, in order (see :func:`tokens`).
STYLE = ("code tokens", "numbers with units", "we per 10 words", "how/why title", "title only")
#: Fewer words of text than this: a title-only item (or a one-line teaser).
SHORT_TEXT = 30


@dataclass(frozen=True, slots=True)
class Tokens:
    """The vocabulary features of one article: words and two-word phrases of its title and
    of its text (stopwords dropped from single words; a phrase has no stopword)."""

    title: frozenset[str]
    text: frozenset[str]
    words: int  # words of text (after the title)
    style: tuple[float, ...] = (0.0,) * len(STYLE)


def _grams(words: Sequence[str]) -> set[str]:
    out = {w for w in words if len(w) > 2 and w not in STOPWORDS}
    out.update(
        f"{a} {b}"
        for a, b in itertools.pairwise(words)
        if a not in STOPWORDS and b not in STOPWORDS and len(a) > 1 and len(b) > 1
    )
    return out


def tokens(title: str, text: str) -> Tokens:
    """The features :class:`AngleModel` reads from an article's title and text."""
    text = text[:SCAN_CHARS]
    words = _WORD.findall(text.lower())
    count = max(1, len(text.split()))
    style = (
        math.log1p(len(_CODE.findall(text))),
        math.log1p(len(_UNIT.findall(text))),
        len(_WE.findall(text)) / count * 10,
        float(title.lower().lstrip().startswith(_HOW)),
        float(count < SHORT_TEXT),
    )
    return Tokens(
        frozenset(_grams(_WORD.findall(title.lower()))),
        frozenset(_grams(words[:TEXT_WORDS])),
        len(words),
        style,
    )


def definition_hash(angle: Angle) -> str:
    """What a head was trained for: the angle's name, description, guideline and cue terms."""
    payload = [angle.name, angle.description, angle.guideline, list(angle.terms), list(angle.exclude)]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class AngleHead:
    """One angle's logistic head (weights already include the feature scales)."""

    name: str
    definition: str
    bias: float
    threshold: float
    vector: Matrix  # (dim,)
    title_words: dict[str, float]
    text_words: dict[str, float]
    length: float  # weight of log(1 + words)
    strength: float  # weight of log(1 + cue evidence strength)
    cue_in_title: float  # weight of a cue term in the title
    style: tuple[float, ...] = (0.0,) * len(STYLE)  # weights of the style features
    #: Words that never count as evidence, however they weigh (too common to say anything).
    common: frozenset[str] = frozenset()
    #: Identifies the trained weights (in each label's signature: new weights re-label).
    fingerprint: str = ""

    def logits(
        self, vectors: Matrix, toks: Sequence[Tokens], evidence: Sequence[tuple[float, bool]]
    ) -> npt.NDArray[np.float64]:
        """Log-odds for each article (rows of ``vectors``, aligned with ``toks`` and
        ``evidence``: the angle's (cue strength, cue in title) per article)."""
        out = (np.asarray(vectors, dtype=np.float32) @ self.vector).astype(np.float64) + self.bias
        for i, (tok, (strength, in_title)) in enumerate(zip(toks, evidence, strict=True)):
            out[i] += sum(self.title_words.get(w, 0.0) for w in tok.title)
            out[i] += sum(self.text_words.get(w, 0.0) for w in tok.text)
            out[i] += self.length * math.log1p(tok.words) + self.strength * math.log1p(strength)
            out[i] += self.cue_in_title if in_title else 0.0
            out[i] += sum(w * x for w, x in zip(self.style, tok.style, strict=True))
        return out

    def evidence_words(self, tok: Tokens, limit: int = 3) -> tuple[str, ...]:
        """The article's words that pushed this head up most (at least ``MIN_EVIDENCE``)."""
        pushes: dict[str, float] = {}
        for words, weights in ((tok.title, self.title_words), (tok.text, self.text_words)):
            for w in words:
                weight = weights.get(w, 0.0)
                if weight >= MIN_EVIDENCE and w not in self.common:
                    pushes[w] = pushes.get(w, 0.0) + weight
        ranked = sorted(pushes.items(), key=lambda kv: (-kv[1], kv[0]))
        out: list[str] = []
        for word, _ in ranked:  # "tail latency" makes "latency" redundant
            if any(word in kept.split() or kept in word.split() for kept in out):
                continue
            out.append(word)
            if len(out) == limit:
                break
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Encoded:
    """Articles' vocabulary features as (row, word index) pairs, for :class:`CompiledHeads`."""

    rows: int
    title_rows: npt.NDArray[np.intp]
    title_idx: npt.NDArray[np.intp]
    text_rows: npt.NDArray[np.intp]
    text_idx: npt.NDArray[np.intp]


@dataclass(frozen=True)
class CompiledHeads:
    """Several heads' word weights as arrays over one shared vocabulary.

    Scoring a batch is then a few numpy operations per head instead of a dictionary lookup per
    word and head (five heads x ~600 words an article made labelling the corpus 1.5x slower).
    The sums equal :meth:`AngleHead.logits`' up to float rounding; :meth:`AngleHead.logits`
    and :meth:`AngleHead.evidence_words` stay the reference."""

    heads: tuple[AngleHead, ...]
    index: dict[str, int]
    title: npt.NDArray[np.float64]  # (heads, vocabulary)
    text: npt.NDArray[np.float64]
    evident_title: npt.NDArray[np.float64]  # 1.0 where the word is evidence for the head
    evident_text: npt.NDArray[np.float64]

    @classmethod
    def of(cls, heads: Sequence[AngleHead]) -> CompiledHeads:
        words = sorted({w for h in heads for w in (*h.title_words, *h.text_words)})
        index = {w: i for i, w in enumerate(words)}
        shape = (len(heads), len(words))
        title, text = np.zeros(shape), np.zeros(shape)
        for k, h in enumerate(heads):
            for w, v in h.title_words.items():
                title[k, index[w]] = v
            for w, v in h.text_words.items():
                text[k, index[w]] = v
        common = np.array([w in h.common for h in heads for w in words], dtype=bool).reshape(shape)
        evident_title = ((title >= MIN_EVIDENCE) & ~common).astype(np.float64)
        evident_text = ((text >= MIN_EVIDENCE) & ~common).astype(np.float64)
        return cls(tuple(heads), index, title, text, evident_title, evident_text)

    def encode(self, toks: Sequence[Tokens]) -> Encoded:
        index = self.index
        tr: list[int] = []
        ti: list[int] = []
        xr: list[int] = []
        xi: list[int] = []
        for r, tok in enumerate(toks):
            for w in tok.title:
                j = index.get(w)
                if j is not None:
                    tr.append(r)
                    ti.append(j)
            for w in tok.text:
                j = index.get(w)
                if j is not None:
                    xr.append(r)
                    xi.append(j)
        arr = np.asarray
        return Encoded(len(toks), arr(tr, np.intp), arr(ti, np.intp), arr(xr, np.intp), arr(xi, np.intp))

    def _sum(self, enc: Encoded, title: npt.NDArray[np.float64], text: npt.NDArray[np.float64]) -> Any:
        out = np.zeros((enc.rows, len(self.heads)))
        for k in range(len(self.heads)):
            out[:, k] = np.bincount(enc.title_rows, title[k, enc.title_idx], minlength=enc.rows)
            out[:, k] += np.bincount(enc.text_rows, text[k, enc.text_idx], minlength=enc.rows)
        return out

    def word_sums(self, enc: Encoded) -> npt.NDArray[np.float64]:
        """Per article and head: what its words add to the head's log-odds."""
        out: npt.NDArray[np.float64] = self._sum(enc, self.title, self.text)
        return out

    def has_evidence(self, enc: Encoded) -> npt.NDArray[np.bool_]:
        """Per article and head: whether some word of it is evidence for the head."""
        out: npt.NDArray[np.bool_] = self._sum(enc, self.evident_title, self.evident_text) > 0
        return out

    def logits(
        self,
        vectors: Matrix,
        toks: Sequence[Tokens],
        evidence: Sequence[Sequence[tuple[float, bool]]],
        enc: Encoded | None = None,
    ) -> npt.NDArray[np.float64]:
        """Log-odds per article (rows) and head (columns); ``evidence[i][k]``: head k's angle's
        (cue strength, cue in title) on article i."""
        enc = self.encode(toks) if enc is None else enc
        sums = self.word_sums(enc)
        words = np.log1p(np.array([t.words for t in toks], dtype=np.float64))
        style = np.array([t.style for t in toks], dtype=np.float64).reshape(len(toks), len(STYLE))
        cues = np.array(evidence, dtype=np.float64).reshape(len(toks), len(self.heads), 2)
        vecs = np.asarray(vectors, dtype=np.float32)
        out = np.zeros((len(toks), len(self.heads)))
        for k, h in enumerate(self.heads):
            out[:, k] = (vecs @ h.vector).astype(np.float64) + h.bias + sums[:, k]
            out[:, k] += (
                h.length * words + h.strength * np.log1p(cues[:, k, 0]) + h.cue_in_title * cues[:, k, 1]
            )
            out[:, k] += style @ np.asarray(h.style, dtype=np.float64)
        return out


def sigmoid(x: npt.NDArray[np.float64] | float) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


@dataclass(frozen=True)
class AngleModel:
    """The trained heads and what they were trained with."""

    model: str  # the embedding model name the vectors came from
    dim: int
    heads: dict[str, AngleHead]  # by definition hash
    about: dict[str, Any]
    #: Words too common in the training articles to count as evidence ("use", "system").
    common: frozenset[str] = frozenset()

    @classmethod
    def bundled(cls) -> AngleModel | None:
        """The shipped heads (None when the package has none)."""
        try:
            text = resources.files("engfeed").joinpath(MODEL_RESOURCE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return cls.from_json(json.loads(text))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AngleModel:
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:12]
        vocab: list[str] = data["vocab"]
        common = frozenset(data.get("common", []))
        dim = int(data["dim"])
        heads: dict[str, AngleHead] = {}
        for h in data["heads"]:
            vector = np.asarray(h["vector"], dtype=np.float32)
            if vector.shape != (dim,):
                raise ValueError(f"angle head {h['name']!r}: vector of {vector.shape}, expected ({dim},)")
            heads[h["definition"]] = AngleHead(
                name=h["name"],
                definition=h["definition"],
                bias=float(h["bias"]),
                threshold=float(h["threshold"]),
                vector=vector,
                title_words={vocab[int(k)]: float(v) for k, v in h["title_words"].items()},
                text_words={vocab[int(k)]: float(v) for k, v in h["text_words"].items()},
                common=common,
                length=float(h["length"]),
                strength=float(h["strength"]),
                cue_in_title=float(h["cue_in_title"]),
                style=tuple(float(x) for x in h["style"]),
                fingerprint=f"{h['definition']}-{digest}",
            )
        return cls(str(data["model"]), dim, heads, dict(data.get("about", {})), common)

    def to_json(self) -> dict[str, Any]:
        vocab = sorted({w for h in self.heads.values() for w in (*h.title_words, *h.text_words)})
        index = {w: i for i, w in enumerate(vocab)}

        def sparse(weights: dict[str, float]) -> dict[str, float]:
            return {
                str(index[w]): round(v, 4) for w, v in sorted(weights.items(), key=lambda kv: index[kv[0]])
            }

        return {
            "about": self.about,
            "model": self.model,
            "dim": self.dim,
            "vocab": vocab,
            "common": sorted(self.common),
            "heads": [
                {
                    "name": h.name,
                    "definition": h.definition,
                    "bias": round(h.bias, 5),
                    "threshold": round(h.threshold, 4),
                    "vector": [round(float(x), 5) for x in h.vector],
                    "title_words": sparse(h.title_words),
                    "text_words": sparse(h.text_words),
                    "length": round(h.length, 5),
                    "strength": round(h.strength, 5),
                    "cue_in_title": round(h.cue_in_title, 5),
                    "style": [round(x, 5) for x in h.style],
                }
                for h in self.heads.values()
            ],
        }

    def heads_for(
        self, angles: Iterable[Angle], model_name: str, dim: int | None = None
    ) -> list[AngleHead | None]:
        """Per angle, its head when one was trained for exactly this angle and model (and, when
        ``dim`` is given, vectors of that dimension)."""
        if model_name != self.model or (dim is not None and dim != self.dim):
            return [None for _ in angles]
        return [self.heads.get(definition_hash(a)) for a in angles]
