"""Learning useful angles from the reader: "not this angle" and "add angle" as examples.

A verdict is final for its own article: a rejected angle is never shown on it again, an
added one always is (with the evidence terms the text has, if any). For every other article
it is a labelled example: an article whose vector is close to one the reader rejected an
angle on (cosine at least ``NEIGHBOUR_SIM``) loses up to ``NEIGHBOUR_WEIGHT`` of that angle's
meaning score (or ``NEIGHBOUR_LOGIT`` of a learned head's log-odds), one close to an accepted
example gains as much, linearly from ``NEIGHBOUR_SIM`` to ``NEIGHBOUR_FULL``. The labeller's
other rules still apply, so a neighbour still needs evidence terms for an angle ("no evidence, no angle").

The model is the examples themselves, one matrix of unit vectors per angle and verdict:
"re-training" after a verdict rebuilds those matrices (microseconds for 1,000 examples), and
only the article and its neighbours are re-labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

#: Cosine between two article vectors from which a verdict on one moves the other's labels.
#: Measured on the 686 articles of ../shared/feeds (MiniLM document vectors): the median
#: article's nearest other article is at 0.59, the 90th percentile at 0.75; a third of the
#: articles have a neighbour at 0.65 or more (follow-ups and same-topic posts), one in ten at 0.75.
NEIGHBOUR_SIM = 0.65
#: From this cosine on (near-duplicates, re-posts) the full weight applies.
NEIGHBOUR_FULL = 0.90
#: The most a neighbour's meaning score moves (the labeller's threshold is 0.43, its floor 0.25).
NEIGHBOUR_WEIGHT = 0.15
#: For an angle labelled by a learned head (engfeed.angle_model), the same full weight moves the
#: head's log-odds by this much: a probability of 0.9 becomes 0.02, one of 0.1 becomes 0.98. Full
#: weight is for near-duplicates, so a verdict carries over to them almost as it is; the bundled
#: heads accept at 0.08, so even a confident 0.93 falls below it (to 0.03).
NEIGHBOUR_LOGIT = 6.0
VERDICTS = {"yes": 1, "no": -1, "clear": None}


@dataclass(slots=True)
class FeedbackModel:
    """The reader's verdicts: per article (final) and per angle (examples for the rest)."""

    angle_names: list[str]
    verdicts: dict[int, dict[int, int]] = field(default_factory=dict)  # article -> angle index -> ±1
    positives: dict[int, Matrix] = field(default_factory=dict)  # angle index -> unit vectors
    negatives: dict[int, Matrix] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        angle_names: Sequence[str],
        rows: Sequence[tuple[int, str, int]],
        vectors: dict[int, Matrix] | None = None,
    ) -> FeedbackModel:
        """From (article id, angle, verdict) rows and the articles' vectors (when embedded).
        Verdicts on angles the reader no longer has are ignored."""
        index = {name.casefold(): i for i, name in enumerate(angle_names)}
        model = cls(list(angle_names))
        pos: dict[int, list[Matrix]] = {}
        neg: dict[int, list[Matrix]] = {}
        for aid, angle, verdict in rows:
            a = index.get(angle.casefold())
            if a is None:
                continue
            model.verdicts.setdefault(aid, {})[a] = 1 if verdict > 0 else -1
            vec = (vectors or {}).get(aid)
            if vec is not None:
                (pos if verdict > 0 else neg).setdefault(a, []).append(_unit(vec))
        model.positives = {a: np.vstack(v) for a, v in pos.items()}
        model.negatives = {a: np.vstack(v) for a, v in neg.items()}
        return model

    def __bool__(self) -> bool:
        return bool(self.verdicts)

    def verdicts_of(self, article_id: int | None) -> dict[int, int]:
        return self.verdicts.get(article_id, {}) if article_id is not None else {}

    def bias(self, vectors: Matrix) -> Matrix:
        """Per row of ``vectors`` and per angle: how much the examples move its meaning score."""
        out = np.zeros((len(vectors), len(self.angle_names)), dtype=np.float32)
        if not len(vectors) or not (self.positives or self.negatives):
            return out
        units = _units(vectors)
        for a, examples in self.positives.items():
            out[:, a] += _pull(units, examples)
        for a, examples in self.negatives.items():
            out[:, a] -= _pull(units, examples)
        return out

    def example_vectors(self) -> Matrix | None:
        """Every example vector (any angle, any verdict), for finding the articles they move."""
        parts = [*self.positives.values(), *self.negatives.values()]
        return np.vstack(parts) if parts else None


def neighbours(vector: npt.NDArray[Any], ids: Sequence[int], matrix: Matrix) -> list[int]:
    """The ids (rows of ``matrix``) whose vectors are within ``NEIGHBOUR_SIM`` of ``vector``."""
    if not len(matrix):
        return []
    sims = _units(matrix) @ _unit(np.asarray(vector, dtype=np.float32)).ravel()
    return [int(ids[int(i)]) for i in np.flatnonzero(sims >= NEIGHBOUR_SIM)]


def _pull(units: Matrix, examples: Matrix) -> npt.NDArray[np.float32]:
    best = (units @ examples.T).max(axis=1)
    strength = np.clip((best - NEIGHBOUR_SIM) / (NEIGHBOUR_FULL - NEIGHBOUR_SIM), 0.0, 1.0)
    out: npt.NDArray[np.float32] = (NEIGHBOUR_WEIGHT * strength).astype(np.float32)
    return out


def _unit(vec: npt.NDArray[Any]) -> Matrix:
    v = np.asarray(vec, dtype=np.float32).reshape(1, -1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _units(matrix: npt.NDArray[Any]) -> Matrix:
    m = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Matrix = (m / norms).astype(np.float32)
    return out
