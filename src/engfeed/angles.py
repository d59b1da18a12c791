"""Useful angles: label each article with why it is worth this reader's time.

An angle (``data/angles.toml`` or the reader's own file) is a name, a description in the
reader's words, cue terms and optional exclusion contexts. Each angle is decided by one of
two rules:

* a **trained head** (:mod:`engfeed.angle_model`), for a bundled angle as shipped: a
  probability from the article's vector, words, style and cue evidence, against the head's
  threshold; or
* the **prototype rule**, for an angle the reader wrote or edited (no labels yet) and the
  bundled angles with too few training labels: the cosine between the article's embedding
  and the angle's prototype (the embedded description, blended with the embedded cue terms)
  plus cue evidence, against a calibrated threshold.

Either way there must be **evidence** in the text: a cue term that really occurs (whole
word, case-insensitive, plural-tolerant, not inside or beside one of the angle's ``exclude``
contexts: "attack surface" is no graphics cue), or a word the head learned to weigh.

A wrong angle is worse than none, so the labeller abstains when unsure: at most two angles
per article, ranked on one scale (how far each clears its own threshold), each shown with one
to three evidence terms as they appear in the text. Without an embedder (embeddings
disabled) only strong cue evidence counts.

Labelling is vectorised: one matrix product scores every article against every angle and
one compiled regex per angle set finds the cues, so thousands of articles with stored
vectors label in seconds (8,650 in 3.4 s with the trained heads).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engfeed.angle_model import AngleHead, AngleModel, CompiledHeads, Encoded, Tokens, sigmoid, tokens
from engfeed.angles_feedback import NEIGHBOUR_LOGIT, NEIGHBOUR_WEIGHT, FeedbackModel
from engfeed.errors import ConfigError
from engfeed.models import AngleMatch
from engfeed.text import has_control_chars

if TYPE_CHECKING:
    from engfeed.embed import Embedder
    from engfeed.store import Store

__all__ = [
    "Angle",
    "AngleLabeler",
    "Calibration",
    "angles_signature",
    "dump_angles",
    "load_angles",
    "suggest_angles",
]

Matrix = npt.NDArray[np.float32]
Progress = Callable[[int, int], None]

#: Bump when the labelling algorithm or its calibration changes: every article re-labels.
ALGORITHM_VERSION = "2"
DEFAULT_RESOURCE = "data/angles.toml"
MAX_ANGLES = 2
MAX_TERMS = 3
#: Characters of an article scanned for cue terms (long posts: the start says enough).
SCAN_CHARS = 40_000
#: How far (characters, within one sentence) an ``exclude`` context reaches around a cue.
EXCLUDE_REACH = 120
#: Ranking angles of both rules on one scale: a prototype-rule score this much above its
#: threshold counts as one unit of a trained head's log-odds above its own. The prototype
#: rule's accepted scores span about 0.43-0.75 (a margin of 0-0.3), a head's log-odds margins
#: about 0-4.
PROTOTYPE_MARGIN_SCALE = 12.0

_ALLOWED_KEYS = {"name", "description", "terms", "exclude", "guideline"}
#: An angle's name is a filter value in URLs (``?angle=``), where longer ones are cut.
MAX_NAME_CHARS = 80


# --------------------------------------------------------------------------- the angle


@dataclass(frozen=True)
class Angle:
    """One reason to read: a name, the reader's description, cue terms, exclusions."""

    name: str
    description: str
    terms: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    #: What counts and what does not (the written definition a judged set is labelled from,
    #: shown on the page); not part of the labelling signature yet.
    guideline: str = ""


def _clean_terms(values: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        term = " ".join(value.lower().split())
        if term:
            seen.setdefault(term, None)
    return tuple(seen)


#: An angle file is a few KB of hand-written TOML; a larger one is a mistake.
MAX_ANGLES_BYTES = 1024 * 1024


def load_angles(path: Path | None = None) -> list[Angle]:
    """Read an angle file (``None``: the bundled seven angles).

    Raises :class:`EngfeedError` with the file and the offending angle named when the
    file is missing, is not TOML, lacks a field, or repeats a name.
    """
    if path is None:
        text = resources.files("engfeed").joinpath(DEFAULT_RESOURCE).read_text(encoding="utf-8")
        where = "bundled angles.toml"
    else:
        where = str(path)
        try:
            if Path(path).stat().st_size > MAX_ANGLES_BYTES:
                raise ConfigError(f"angle file too large: {path} is over {MAX_ANGLES_BYTES // 1024} KB")
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"angle file not found: {path}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read angle file {path}: {exc}") from exc
    return parse_angles(text, where=where)


def parse_angles(text: str, *, where: str = "angles") -> list[Angle]:
    """Parse angle-file TOML text (see :func:`load_angles`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    except RecursionError as exc:  # thousands of nested arrays or tables
        raise ConfigError(f"{where}: not valid TOML: nested too deeply") from exc
    tables = data.get("angle")
    if tables is None:
        raise ConfigError(
            f"{where}: no angles found; expected [[angle]] tables with name, description, terms"
        )
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: 'angle' must be an array of tables written as [[angle]]")
    angles: list[Angle] = []
    seen: dict[str, int] = {}
    for number, table in enumerate(tables, start=1):
        angle = _angle_from_table(table, f"{where}: angle #{number}")
        key = angle.name.casefold()
        if key in seen:
            raise ConfigError(
                f"{where}: angle #{number}: duplicate name {angle.name!r} (also angle #{seen[key]})"
            )
        seen[key] = number
        angles.append(angle)
    if not angles:
        raise ConfigError(
            f"{where}: no angles found; expected [[angle]] tables with name, description, terms"
        )
    return angles


def _angle_from_table(table: dict[str, Any], where: str) -> Angle:
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: missing 'name' (a non-empty string)")
    name = " ".join(name.split())
    if has_control_chars(name):  # the page's filters drop them: it could never be filtered on
        raise ConfigError(f"{where}: the name {name[:80]!a} holds a control or direction-override character")
    if len(name) > MAX_NAME_CHARS:
        raise ConfigError(f"{where}: the name is {len(name)} characters; at most {MAX_NAME_CHARS}")
    where = f"{where} ({name!r})"
    unknown = sorted(set(table) - _ALLOWED_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))};"
            " allowed: name, description, terms, exclude, guideline"
        )
    description = table.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{where}: missing 'description' (a non-empty string)")
    terms = table.get("terms")
    if terms is None:
        raise ConfigError(f"{where}: missing 'terms' (a list of cue words or phrases)")
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise ConfigError(f"{where}: 'terms' must be a list of strings")
    clean = _clean_terms(terms)
    if not clean:
        raise ConfigError(f"{where}: 'terms' is empty; give at least one cue word or phrase")
    exclude = table.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(t, str) for t in exclude):
        raise ConfigError(f"{where}: 'exclude' must be a list of strings")
    guideline = table.get("guideline", "")
    if not isinstance(guideline, str):
        raise ConfigError(f"{where}: 'guideline' must be a string")
    clean_exclude = _clean_terms(exclude)
    for key, values in (("terms", clean), ("exclude", clean_exclude)):
        for term in values:
            if not any(ch.isalnum() for ch in term):
                raise ConfigError(
                    f"{where}: {key} entry {term!r} has no letter or digit: it would match anywhere"
                )
    return Angle(name, " ".join(description.split()), clean, clean_exclude, " ".join(guideline.split()))


def angles_signature(angles: Sequence[Angle], model_name: str, heads: Sequence[str] = ()) -> str:
    """A stable hash of the angle set, the embedding model, the algorithm version and the
    learned heads in use (``heads``: their fingerprints).

    Stored with each article's labels: any change to the file, model or heads re-labels.
    """
    payload: dict[str, object] = {
        "v": ALGORITHM_VERSION,
        "model": model_name,
        "angles": [[a.name, a.description, list(a.terms), list(a.exclude)] for a in angles],
    }
    if heads:
        payload["heads"] = list(heads)
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return f"angles-v{ALGORITHM_VERSION}-{digest.hexdigest()[:16]}"


# --------------------------------------------------------------------------- TOML out


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_list(values: Sequence[str], indent: str = "    ", width: int = 90) -> str:
    if not values:
        return "[]"
    lines: list[str] = []
    line = indent
    for item in (_toml_str(v) + "," for v in values):
        if len(line) + len(item) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += item + " "
    lines.append(line.rstrip())
    return "[\n" + "\n".join(lines) + "\n]"


def dump_angles(angles: Sequence[Angle]) -> str:
    """The angles as angle-file TOML (round-trips through :func:`load_angles`)."""
    out = [
        "# Useful angles. Each [[angle]] has a name, a description (what you want to read),",
        "# cue terms that must occur in an article, and optional exclude contexts.",
        "",
    ]
    for angle in angles:
        out.append("[[angle]]")
        out.append(f"name = {_toml_str(angle.name)}")
        out.append(f"description = {_toml_str(angle.description)}")
        if angle.guideline:
            out.append(f"guideline = {_toml_str(angle.guideline)}")
        out.append(f"terms = {_toml_list(angle.terms)}")
        if angle.exclude:
            out.append(f"exclude = {_toml_list(angle.exclude)}")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- evidence


def _term_pattern(term: str) -> str:
    """Regex for one cue: words joined by any space/hyphen run, plural-tolerant last word."""
    words = [w for w in re.split(r"[\s\-]+", term) if w]
    parts: list[str] = []
    for i, word in enumerate(words):
        esc = re.escape(word)
        if i == len(words) - 1 and word[-1:].isalpha():
            if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
                esc = re.escape(word[:-1]) + "(?:y|ies)"
            elif len(word) > 1:
                esc += "(?:s|es)?"
        parts.append(esc)
    joiner = r"[\s\-]+" if " " in term else r"[\s\-]?"
    # A hyphenated term ("real-time") also matches "real time" and "realtime".
    if " " not in term and "-" in term:
        return r"[\s\-]?".join(parts)
    return joiner.join(parts)


def _bounded(pattern: str) -> str:
    return rf"(?<![\w]){pattern}(?![\w])"


_SENTENCE_END = re.compile(r"[.!?]\s|\n")


def _specificity(term: str) -> float:
    """How telling a cue is: phrases and jargon beat everyday words."""
    words = term.split()
    base = 1.0 if len(words) > 1 or any(not c.isalpha() for c in term) else 0.7
    if len(words) == 1 and len(term) >= 10:
        base = 0.85
    return base


@dataclass(slots=True)
class Evidence:
    """Cue terms found for one angle in one article."""

    counts: Counter[str] = field(default_factory=Counter)
    surface: dict[str, Counter[str]] = field(default_factory=dict)
    in_title: set[str] = field(default_factory=set)
    #: Where each surface form first counted, in ``title + "\n" + text`` (an excluded
    #: occurrence before it is not evidence, so "why this angle" must not quote it).
    first_at: dict[str, int] = field(default_factory=dict)

    def strength(self, specificity: dict[str, float]) -> float:
        total = 0.0
        for term, n in self.counts.items():
            weight = specificity.get(term, 0.7)
            total += weight * (1.0 + math.log(n)) * (1.5 if term in self.in_title else 1.0)
        return total

    def best_terms(self, specificity: dict[str, float], limit: int = MAX_TERMS) -> tuple[str, ...]:
        ranked = sorted(
            self.counts,
            key=lambda t: (
                t in self.in_title,
                specificity.get(t, 0.7) * (1.0 + math.log(self.counts[t])),
                len(t),
            ),
            reverse=True,
        )
        out: list[str] = []
        for term in ranked:
            shown = self.surface[term].most_common(1)[0][0]
            if shown not in out:
                out.append(shown)
            if len(out) == limit:
                break
        return tuple(out)


def _alternation(terms: Iterable[str], *, named: bool = False) -> str:
    """One regex for many cues: longest first, grouped by first letter (a shallow trie).

    Grouping lets the regex engine skip positions whose letter starts no cue, which is most
    of them; ``named`` wraps each cue in a group ``t<i>`` (``i`` its index in ``terms``).
    """
    groups: dict[str, list[str]] = {}
    other: list[str] = []
    ordered = sorted(enumerate(terms), key=lambda it: -len(it[1]))
    for i, term in ordered:
        pattern = _term_pattern(term)
        if named:
            pattern = f"(?P<t{i}>{pattern})"
            groups.setdefault("", []).append(pattern)
        elif term[0].isalnum() and pattern[0] == term[0]:
            groups.setdefault(term[0], []).append(pattern[1:])
        else:
            other.append(rf"(?<!\w){pattern}")
    parts = [re.escape(c) + "(?:" + "|".join(alts) + ")" for c, alts in groups.items() if c]
    parts += groups.get("", []) + other
    return r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)"


class _Matcher:
    """Finds each angle's cue terms in a text, minus those voided by its exclude contexts.

    Per angle, one trie-shaped regex finds the cues in a single pass; at each hit a second
    regex, anchored there, names the cue (named groups would defeat the trie). Exclude
    contexts are only looked for around actual hits.
    """

    def __init__(self, angles: Sequence[Angle]) -> None:
        self.cues: list[tuple[re.Pattern[str], re.Pattern[str], tuple[str, ...]]] = []
        self.excludes: list[re.Pattern[str] | None] = []
        for angle in angles:
            fast = re.compile(_alternation(angle.terms))
            named = re.compile(_alternation(angle.terms, named=True))
            self.cues.append((fast, named, angle.terms))
            self.excludes.append(re.compile(_alternation(angle.exclude)) if angle.exclude else None)

    def find(self, title: str, text: str) -> list[Evidence]:
        """Cue terms of every angle found in ``title`` and ``text`` (title hits are marked)."""
        # Cues are lowercase: lowering the text once beats a case-insensitive regex.
        full = f"{title}\n{text[:SCAN_CHARS]}".lower()
        title_len = len(title)
        sentence_ends: list[int] | None = None
        found: list[Evidence] = []
        for (fast, named, terms), exclude in zip(self.cues, self.excludes, strict=True):
            ev = Evidence()
            found.append(ev)
            for hit in fast.finditer(full):
                start, end = hit.span()
                if exclude is not None:
                    near = exclude.search(full, max(0, start - EXCLUDE_REACH), end + EXCLUDE_REACH)
                    if near is not None:
                        if sentence_ends is None:
                            sentence_ends = [x.start() for x in _SENTENCE_END.finditer(full)]
                        spans = [
                            x.span()
                            for x in exclude.finditer(
                                full, max(0, start - EXCLUDE_REACH), end + EXCLUDE_REACH
                            )
                        ]
                        if _excluded(start, end, spans, sentence_ends):
                            continue
                m = named.match(full, start)
                name = m.lastgroup if m is not None else None
                if name is None:  # pragma: no cover - both regexes list the same cues
                    continue
                term = terms[int(name[1:])]
                ev.counts[term] += 1
                shown = " ".join(hit.group(0).split())
                ev.surface.setdefault(term, Counter())[shown] += 1
                ev.first_at.setdefault(shown, start)
                if start < title_len:
                    ev.in_title.add(term)
        return found


def _excluded(start: int, end: int, spans: list[tuple[int, int]], sentence_ends: list[int]) -> bool:
    """A cue is void if an exclude context overlaps it or sits near it in the same sentence."""
    sentence = bisect.bisect_left(sentence_ends, start)
    for xs, xe in spans:
        if xs < end and start < xe:
            return True
        if xe <= start - EXCLUDE_REACH or xs >= end + EXCLUDE_REACH:
            continue
        if bisect.bisect_left(sentence_ends, xs) == sentence:
            return True
    return False


# --------------------------------------------------------------------------- labelling


@dataclass(frozen=True)
class Calibration:
    """Decision parameters, tuned on labelled articles (``bench/relevance/data/angles.json``).

    Meaning: ``description_weight`` x cosine(article, description) plus the rest x the mean
    of the ``top_terms`` best cosines between the article and the angle's individually
    embedded cue terms. Decision score: meaning + ``evidence_weight`` x log(1 + evidence
    strength) + ``title_bonus`` when a cue is in the title. An angle needs a decision
    score of at least ``threshold`` and a meaning of at least ``semantic_floor``; a second
    angle must also come within ``second_margin`` of the first. Without embeddings only
    evidence counts: a cue must be in the title and the strength reach ``no_vector_evidence``.
    """

    description_weight: float = 0.2
    top_terms: int = 2
    evidence_weight: float = 0.045
    title_bonus: float = 0.08
    threshold: float = 0.43
    semantic_floor: float = 0.25
    second_margin: float = 0.05
    no_vector_evidence: float = 5.0


DEFAULT_CALIBRATION = Calibration()


def article_text(title: str, excerpt: str, body: str) -> str:
    """The text searched for cue terms: title, then excerpt (unless the body has it), body."""
    body = body or ""
    if excerpt and excerpt[:80].rstrip("…. ") not in body[:2000]:
        body = f"{excerpt}\n{body}" if body else excerpt
    return f"{title}\n{body}"


def embedding_text(title: str, excerpt: str, body: str) -> str:
    """The passage an article is embedded as when it has no stored vector.

    The same as the search index's document text, so stored and fresh vectors agree.
    """
    from engfeed.search import document_text

    return document_text(title, excerpt, body)


@dataclass(frozen=True, slots=True)
class Judgement:
    """Why one angle was (not) given to one article: the figures the decision used."""

    accepted: bool
    score: float | None  # decision score (None when not computed)
    reason: str
    meaning: float | None = None  # semantic score, feedback nudge included
    strength: float = 0.0  # evidence strength
    nudge: float = 0.0  # what the reader's verdicts on similar articles added
    verdict: int | None = None  # the reader's own verdict on this article


@dataclass(frozen=True, slots=True)
class Learned:
    """A learned head's view of one article for one angle (engfeed.angle_model)."""

    logit: float  # before the reader's feedback
    threshold: float  # the probability the head accepts at
    words: tuple[str, ...]  # the article's words that count for the angle, strongest first


@dataclass(frozen=True, slots=True)
class AngleExplanation:
    """One angle's decision on one article, as ``angles explain`` shows it."""

    angle: str
    chosen: bool
    judgement: Judgement
    threshold: float
    terms: tuple[str, ...]
    passage: str  # the sentence around the strongest evidence term ('' when none)
    #: "learned" (a trained head: score and threshold are probabilities), "prototype" (the
    #: description/cue-term rule, for angles without a head) or "evidence" (no embeddings).
    rule: str = "prototype"

    def to_json(self) -> dict[str, object]:
        j = self.judgement
        return {
            "angle": self.angle,
            "chosen": self.chosen,
            "rule": self.rule,
            "reason": j.reason,
            "score": None if j.score is None else round(j.score, 4),
            "threshold": self.threshold,
            "meaning": None if j.meaning is None else round(j.meaning, 4),
            "evidence": round(j.strength, 4),
            "feedback_nudge": round(j.nudge, 4),
            "verdict": {1: "yes", -1: "no"}.get(j.verdict or 0),
            "terms": list(self.terms),
            "passage": self.passage,
        }


def _log_odds(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _passage(text: str, term: str, limit: int = 320, *, at: int | None = None) -> str:
    """The sentence of ``text`` that holds ``term`` at offset ``at`` (where the cue counted),
    else its first occurrence (case-insensitive), clipped."""
    lowered = text.lower()
    if at is None or lowered.find(term.lower(), max(0, at - 2), at + len(term) + 2) < 0:
        at = lowered.find(term.lower())
    if at < 0:
        return ""
    start = max(text.rfind(". ", 0, at), text.rfind("\n", 0, at))
    start = 0 if start < 0 else start + 1
    ends = [e for e in (text.find(". ", at), text.find("\n", at)) if e >= 0]
    end = min(ends) + 1 if ends else len(text)
    sentence = " ".join(text[start:end].split())
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


class AngleLabeler:
    """Labels articles with at most two angles, each with its evidence terms."""

    def __init__(
        self,
        angles: Sequence[Angle],
        embedder: Embedder | None,
        *,
        calibration: Calibration = DEFAULT_CALIBRATION,
        learned: AngleModel | bool | None = True,
    ) -> None:
        """``learned``: the trained heads to use (True: the bundled ones, False/None: none, so
        every angle is labelled by the prototype rule)."""
        self.angles = list(angles)
        self.embedder = embedder
        self.calibration = calibration
        self.model_name = embedder.name if embedder is not None else "none"
        model = AngleModel.bundled() if learned is True else (learned or None)
        #: Per angle, the trained head that labels it (None: the prototype rule).
        self.heads: list[AngleHead | None] = (
            model.heads_for(self.angles, self.model_name, getattr(embedder, "dim", None))
            if model is not None and embedder is not None
            else [None] * len(self.angles)
        )
        self.signature = angles_signature(
            self.angles, self.model_name, [h.fingerprint for h in self.heads if h is not None]
        )
        self._index = {a.name.casefold(): i for i, a in enumerate(self.angles)}
        #: The angles that have a head, and their heads compiled for batches.
        self._headed = [a for a, h in enumerate(self.heads) if h is not None]
        self._compiled = CompiledHeads.of([h for h in self.heads if h is not None]) if self._headed else None
        self._matcher = _Matcher(self.angles)
        self._specificity = {t: _specificity(t) for a in self.angles for t in a.terms}
        self._prototypes: Prototypes | None = None
        #: The reader's verdicts (engfeed.angles_feedback); set by the Feed, None for none.
        self.feedback: FeedbackModel | None = None

    # -- prototypes

    @property
    def prototypes(self) -> Prototypes:
        """The embedded descriptions and cue terms (computed on first use)."""
        if self._prototypes is None:
            assert self.embedder is not None
            self._prototypes = Prototypes.build(self.angles, self.embedder)
        return self._prototypes

    # -- scoring

    def semantic_scores(self, vectors: npt.NDArray[Any]) -> Matrix:
        """Meaning score of each article vector (rows) for each angle (columns)."""
        return self.prototypes.scores(
            np.asarray(vectors, dtype=np.float32),
            description_weight=self.calibration.description_weight,
            top_terms=self.calibration.top_terms,
        )

    def evidence(self, title: str, text: str) -> list[Evidence]:
        return self._matcher.find(title, text)

    def decide(
        self,
        evidence: Sequence[Evidence],
        semantic: Sequence[float] | None,
        *,
        verdicts: dict[int, int] | None = None,
        bias: Sequence[float] | None = None,
        learned: Sequence[Learned | None] | None = None,
    ) -> tuple[AngleMatch, ...]:
        """Apply the rules to one article's evidence, meaning scores and (``learned``, per angle)
        the trained heads' view of it; the first angle is the strongest.

        ``verdicts`` (angle index -> ±1) are the reader's own on this article: final, and an
        added angle comes first. ``bias`` (per angle) is what the reader's verdicts on similar
        articles add (engfeed.angles_feedback). Accepted angles are ranked on one scale, how far
        they clear their own threshold (:meth:`_margin`); a second prototype-rule angle must
        also come within ``second_margin`` of the best prototype-rule score."""
        return self._choose(evidence, semantic, verdicts, bias, learned)[0]

    def _choose(
        self,
        evidence: Sequence[Evidence],
        semantic: Sequence[float] | None,
        verdicts: dict[int, int] | None,
        bias: Sequence[float] | None,
        learned: Sequence[Learned | None] | None,
    ) -> tuple[tuple[AngleMatch, ...], dict[int, str]]:
        """:meth:`decide`'s matches, and why each accepted angle that is not among them was left
        out (by angle index)."""
        forced: list[tuple[float, float, int]] = []
        candidates: list[tuple[float, float, int]] = []
        for a, ev in enumerate(evidence):
            judged = self._judge(a, ev, semantic, verdicts, bias, learned)
            threshold = self._threshold(a, learned)
            if judged.verdict == 1:
                score = max(judged.score or 0.0, threshold)
                forced.append((self._margin(a, score, learned), score, a))
            elif judged.accepted and judged.score is not None:
                candidates.append((self._margin(a, judged.score, learned), judged.score, a))
        out: list[AngleMatch] = []
        dropped: dict[int, str] = {}
        for _, score, a in sorted(forced, reverse=True):
            if len(out) >= MAX_ANGLES:
                dropped[a] = f"you added it, but {MAX_ANGLES} angles you added come first"
                continue
            out.append(AngleMatch(self.angles[a].name, self._terms(a, evidence[a], learned), round(score, 4)))
        candidates.sort(reverse=True)
        rule_scores = [score for _, score, a in candidates if not self._is_learned(a, learned)]
        best_rule = max(rule_scores) if rule_scores else 0.0
        margin = self.calibration.second_margin
        for _, score, a in candidates:
            if len(out) >= MAX_ANGLES:
                dropped[a] = f"{MAX_ANGLES} angles cleared their thresholds by more"
            elif not self._is_learned(a, learned) and out and score < best_rule - margin:
                dropped[a] = f"another angle scored higher by more than {margin:.2f}"
            else:
                out.append(
                    AngleMatch(self.angles[a].name, self._terms(a, evidence[a], learned), round(score, 4))
                )
        return tuple(out), dropped

    def strength(self, match: AngleMatch) -> float:
        """How far a stored label cleared its angle's threshold, on the one scale labels are
        ranked on (:meth:`_margin`): a head's probability and a prototype score are different
        units, so articles are compared by this (the digest), never by ``match.score``."""
        a = self._index.get(match.name.casefold())
        if a is None:  # an angle no longer in the file
            return match.score - self.calibration.threshold
        head = self.heads[a]
        if head is None:
            return self._margin(a, match.score, None)
        return _log_odds(match.score) - _log_odds(head.threshold)

    def _margin(self, a: int, score: float, learned: Sequence[Learned | None] | None) -> float:
        """How far ``score`` clears angle ``a``'s threshold, in log-odds for a trained head and
        ``PROTOTYPE_MARGIN_SCALE`` x the score difference for the prototype rule, so that the two
        rank on one scale."""
        view = learned[a] if learned is not None else None
        if view is not None:
            return _log_odds(score) - _log_odds(view.threshold)
        return PROTOTYPE_MARGIN_SCALE * (score - self.calibration.threshold)

    @staticmethod
    def _is_learned(a: int, learned: Sequence[Learned | None] | None) -> bool:
        return learned is not None and learned[a] is not None

    def _threshold(self, a: int, learned: Sequence[Learned | None] | None) -> float:
        view = learned[a] if learned is not None else None
        return view.threshold if view is not None else self.calibration.threshold

    def _terms(self, a: int, ev: Evidence, learned: Sequence[Learned | None] | None) -> tuple[str, ...]:
        """The evidence terms shown: cue terms found, then the words the head learned."""
        terms = list(ev.best_terms(self._specificity)) if ev.counts else []
        view = learned[a] if learned is not None else None
        for word in view.words if view is not None else ():
            if len(terms) >= MAX_TERMS:
                break
            low = [t.lower() for t in terms]
            if any(word in t.split() or t in word.split() or word == t for t in low):
                continue
            terms.append(word)
        return tuple(terms)

    def _judge(
        self,
        a: int,
        ev: Evidence,
        semantic: Sequence[float] | None,
        verdicts: dict[int, int] | None,
        bias: Sequence[float] | None,
        learned: Sequence[Learned | None] | None = None,
    ) -> Judgement:
        """One angle on one article: its score and whether it passes, with the reason."""
        cal = self.calibration
        verdict = (verdicts or {}).get(a)
        nudge = float(bias[a]) if bias is not None else 0.0
        if verdict == -1:
            return Judgement(False, None, "you said it is not this angle", verdict=-1)
        strength = ev.strength(self._specificity) if ev.counts else 0.0
        view = learned[a] if learned is not None else None
        if view is not None and semantic is not None:
            return self._judge_learned(view, ev, float(semantic[a]), strength, nudge, verdict)
        if not ev.counts:
            if verdict == 1:
                return Judgement(True, None, "you added this angle", verdict=1)
            return Judgement(False, None, "none of its cue terms is in the text")
        if semantic is None:
            # Evidence alone is weak: demand a cue in the title and plenty in the text.
            score = strength / (strength + cal.no_vector_evidence)
            if verdict == 1:
                return Judgement(True, score, "you added this angle", strength=strength, verdict=1)
            if not ev.in_title:
                return Judgement(
                    False, score, "no cue term in the title (needed without embeddings)", strength=strength
                )
            if strength < cal.no_vector_evidence:
                return Judgement(
                    False,
                    score,
                    f"evidence {strength:.2f} below {cal.no_vector_evidence:.2f}",
                    strength=strength,
                )
            return Judgement(True, score, "cue terms in the title and the text", strength=strength)
        sem = float(semantic[a]) + nudge
        score = sem + cal.evidence_weight * math.log1p(strength) + (cal.title_bonus if ev.in_title else 0.0)
        if verdict == 1:
            return Judgement(True, score, "you added this angle", sem, strength, nudge, verdict=1)
        if sem < cal.semantic_floor:
            return Judgement(
                False,
                score,
                f"meaning {sem:.2f} below the floor {cal.semantic_floor:.2f}",
                sem,
                strength,
                nudge,
            )
        if score < cal.threshold:
            return Judgement(
                False,
                score,
                f"score {score:.2f} below the threshold {cal.threshold:.2f}",
                sem,
                strength,
                nudge,
            )
        return Judgement(
            True, score, f"score {score:.2f} at or above {cal.threshold:.2f}", sem, strength, nudge
        )

    @staticmethod
    def _judge_learned(
        view: Learned, ev: Evidence, meaning: float, strength: float, nudge: float, verdict: int | None
    ) -> Judgement:
        """A learned head's decision: its probability (moved by the reader's verdicts on similar
        articles) against its threshold, and evidence in the text."""
        before = float(sigmoid(view.logit))
        prob = float(sigmoid(view.logit + nudge / NEIGHBOUR_WEIGHT * NEIGHBOUR_LOGIT))
        moved = prob - before

        def judged(accepted: bool, reason: str) -> Judgement:
            return Judgement(accepted, prob, reason, meaning, strength, moved, verdict)

        if verdict == 1:
            return judged(True, "you added this angle")
        if not ev.counts and not view.words:
            return judged(False, "no evidence: none of its cue terms or learned words is in the text")
        if prob < view.threshold:
            return judged(False, f"probability {prob:.2f} below the threshold {view.threshold:.2f}")
        return judged(True, f"probability {prob:.2f} at or above {view.threshold:.2f}")

    def learned_view(
        self,
        vectors: Matrix,
        toks: Sequence[Tokens],
        evidence: Sequence[Sequence[Evidence]],
        enc: Encoded | None = None,
    ) -> list[list[Learned | None]]:
        """Per article (rows of ``vectors``) and per angle, what the trained heads make of it."""
        out: list[list[Learned | None]] = [[None] * len(self.angles) for _ in toks]
        compiled = self._compiled
        if compiled is None:
            return out
        enc = compiled.encode(toks) if enc is None else enc
        cues = [
            [
                (ev[a].strength(self._specificity) if ev[a].counts else 0.0, bool(ev[a].in_title))
                for a in self._headed
            ]
            for ev in evidence
        ]
        logits = compiled.logits(vectors, toks, cues, enc)
        evident = compiled.has_evidence(enc)
        for k, a in enumerate(self._headed):
            head = compiled.heads[k]
            for i, tok in enumerate(toks):
                words = head.evidence_words(tok) if evident[i, k] else ()
                out[i][a] = Learned(float(logits[i, k]), head.threshold, words)
        return out

    # -- public API

    def label(
        self,
        title: str,
        excerpt: str,
        body: str,
        vector: npt.NDArray[Any] | None = None,
        *,
        article_id: int | None = None,
    ) -> tuple[AngleMatch, ...]:
        """The angles of one article (embeds it when no vector is given and an embedder is set;
        ``article_id``: the reader's verdicts on it apply)."""
        return self.label_many(
            [(title, excerpt, body)],
            None if vector is None else np.asarray(vector, dtype=np.float32).reshape(1, -1),
            ids=None if article_id is None else [article_id],
        )[0]

    def label_many(
        self,
        items: Sequence[tuple[str, str, str]],
        vectors: npt.NDArray[Any] | None = None,
        *,
        have: Sequence[bool] | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[tuple[AngleMatch, ...]]:
        """Label (title, excerpt, body) items.

        ``vectors`` rows align with ``items``; ``have`` says which rows hold a real vector
        (default: all when ``vectors`` is given). Missing rows are embedded, but only for
        items with some cue term: the others cannot get an angle anyway (unless the reader
        added one). ``ids`` (the items' article ids) bring in the reader's verdicts.
        """
        texts = [article_text("", e, b).lstrip("\n") for _, e, b in items]
        evidence = [self.evidence(item[0], text) for item, text in zip(items, texts, strict=True)]
        compiled = self._compiled
        toks = [tokens(item[0], text) for item, text in zip(items, texts, strict=True)] if compiled else []
        enc = compiled.encode(toks) if compiled else None
        worded: npt.NDArray[np.bool_] = np.zeros(len(items), dtype=bool)
        if compiled is not None and enc is not None:
            worded = np.asarray(compiled.has_evidence(enc).any(axis=1), dtype=bool)
        feedback = self.feedback
        keys: Sequence[int | None] = ids if ids is not None else [None] * len(items)
        verdicts = [feedback.verdicts_of(i) if feedback else {} for i in keys]
        cued = [
            any(x.counts for x in ev) or 1 in verdicts[i].values() or bool(worded[i])
            for i, ev in enumerate(evidence)
        ]
        semantic: Matrix | None = None
        bias: Matrix | None = None
        learned: list[list[Learned | None]] | None = None
        if self.embedder is not None and any(cued):
            if vectors is None:
                matrix = np.zeros((len(items), self.prototypes.dim), dtype=np.float32)
                have = [False] * len(items)
            else:
                matrix = np.array(vectors, dtype=np.float32)
                have = [True] * len(items) if have is None else list(have)
            need = [i for i in range(len(items)) if cued[i] and not have[i]]
            if need:
                matrix[need] = self.embedder.embed([embedding_text(*items[i]) for i in need])
            semantic = self.semantic_scores(matrix)
            if feedback:
                bias = feedback.bias(matrix)
            if compiled:
                learned = self.learned_view(matrix, toks, evidence, enc)
        return [
            self.decide(
                ev,
                None if semantic is None else semantic[i].tolist(),
                verdicts=verdicts[i],
                bias=None if bias is None else bias[i].tolist(),
                learned=None if learned is None else learned[i],
            )
            if cued[i]
            else ()
            for i, ev in enumerate(evidence)
        ]

    def explain(
        self,
        title: str,
        excerpt: str,
        body: str,
        vector: npt.NDArray[Any] | None = None,
        *,
        article_id: int | None = None,
    ) -> list[AngleExplanation]:
        """For every angle: the decision on this article, its figures, its evidence terms and the
        passage that holds the strongest one (``engfeed angles explain``, "why this angle")."""
        text = article_text("", excerpt, body).lstrip("\n")
        evidence = self.evidence(title, text)
        verdicts = self.feedback.verdicts_of(article_id) if self.feedback else {}
        semantic: list[float] | None = None
        bias: list[float] | None = None
        learned: list[Learned | None] | None = None
        if self.embedder is not None:
            vec = (
                self.embedder.embed([embedding_text(title, excerpt, body)])
                if vector is None
                else np.asarray(vector, dtype=np.float32).reshape(1, -1)
            )
            semantic = [float(x) for x in self.semantic_scores(vec)[0]]
            if self.feedback:
                bias = [float(x) for x in self.feedback.bias(vec)[0]]
            if any(h is not None for h in self.heads):
                learned = self.learned_view(vec, [tokens(title, text)], [evidence])[0]
        matches, dropped = self._choose(evidence, semantic, verdicts, bias, learned)
        rank = {m.name: i for i, m in enumerate(matches)}
        out: list[AngleExplanation] = []
        margins: dict[str, float] = {}
        for a, angle in enumerate(self.angles):
            ev = evidence[a]
            judged = self._judge(a, ev, semantic, verdicts, bias, learned)
            reason = judged.reason
            if a in dropped:
                reason = f"{reason}, but {dropped[a]}"
            rule = (
                "evidence" if semantic is None else "learned" if self._is_learned(a, learned) else "prototype"
            )
            margins[angle.name] = (
                -math.inf if judged.score is None else self._margin(a, judged.score, learned)
            )
            out.append(
                AngleExplanation(
                    angle=angle.name,
                    chosen=angle.name in rank,
                    judgement=replace(judged, reason=reason),
                    threshold=self._threshold(a, learned),
                    terms=(terms := self._terms(a, ev, learned)),
                    passage=_passage(f"{title}\n{text}", terms[0], at=ev.first_at.get(terms[0]))
                    if terms
                    else "",
                    rule=rule,
                )
            )
        # the chosen angles in the labeller's order, then the rest by how near they came
        out.sort(key=lambda x: (rank.get(x.angle, len(rank)), -margins[x.angle]))
        return out

    def label_ids(self, store: Store, ids: Sequence[int], model: str | None) -> int:
        """Label these stored articles and save the result; returns how many were labelled.

        Uses the stored vectors of ``model`` when it is the embedder's model, and embeds
        the rest (only those with some cue term: the others cannot get an angle).
        """
        if self.embedder is None or model is None or model != self.embedder.name:
            vectors: dict[int, bytes] = {}
        else:  # only these articles' vectors (a verdict re-labels a handful)
            vectors = store.vectors.of(model, ids)
        return self._label_chunk(store, list(ids), vectors)

    def label_pending(self, store: Store, progress: Progress | None = None) -> int:
        """Label every article not yet labelled by this angle set; returns the count."""
        ids = store.angles.needing(self.signature)
        if not ids:
            return 0
        vectors = self._stored_vectors(store, self.model_name if self.embedder is not None else None)
        done = 0
        for start in range(0, len(ids), 500):
            done += self._label_chunk(store, ids[start : start + 500], vectors)
            if progress is not None:
                progress(done, len(ids))
        return done

    # -- internals

    def _stored_vectors(self, store: Store, model: str | None) -> dict[int, bytes]:
        if self.embedder is None or model is None or model != self.embedder.name:
            return {}
        ids, blobs = store.vectors.load(model)
        return dict(zip(ids, blobs, strict=True))

    def _label_chunk(self, store: Store, ids: list[int], stored: dict[int, bytes]) -> int:
        texts = store.bodies(ids)
        present = [i for i in ids if i in texts]
        items = [texts[i] for i in present]
        vectors: Matrix | None = None
        have: list[bool] | None = None
        if self.embedder is not None and items:
            from engfeed.embed import stack_blobs

            dim = self.prototypes.dim
            size = 2 * dim
            have = [len(stored.get(aid, b"")) == size for aid in present]
            vectors = np.zeros((len(items), dim), dtype=np.float32)
            rows = [r for r, ok in enumerate(have) if ok]
            if rows:
                vectors[rows] = stack_blobs([stored[present[r]] for r in rows], dim)
        labels = self.label_many(items, vectors, have=have, ids=present)
        store.angles.save(zip(present, labels, strict=True), self.signature)
        return len(present)


@dataclass(frozen=True)
class Prototypes:
    """Unit vectors for each angle's description and for each of its cue terms."""

    descriptions: Matrix  # (n_angles, dim)
    terms: Matrix  # (n_terms, dim), angle after angle
    bounds: tuple[tuple[int, int], ...]  # per angle: [start, end) rows of ``terms``

    @classmethod
    def build(cls, angles: Sequence[Angle], embedder: Embedder) -> Prototypes:
        descriptions = embedder.embed([a.description for a in angles])
        flat = [t for a in angles for t in a.terms]
        terms = embedder.embed(flat) if flat else np.zeros((0, descriptions.shape[1]), np.float32)
        bounds: list[tuple[int, int]] = []
        start = 0
        for a in angles:
            bounds.append((start, start + len(a.terms)))
            start += len(a.terms)
        return cls(descriptions, terms, tuple(bounds))

    @property
    def dim(self) -> int:
        return int(self.descriptions.shape[1])

    def scores(self, vectors: Matrix, *, description_weight: float, top_terms: int) -> Matrix:
        desc = vectors @ self.descriptions.T
        if description_weight >= 1.0 or not len(self.terms):
            return desc.astype(np.float32)
        sims = vectors @ self.terms.T
        cue = np.empty_like(desc)
        for a, (start, end) in enumerate(self.bounds):
            block = sims[:, start:end]
            k = max(1, min(top_terms, end - start))
            if block.shape[1] > k:
                block = np.partition(block, block.shape[1] - k, axis=1)[:, -k:]
            cue[:, a] = block.mean(axis=1)
        out: Matrix = (description_weight * desc + (1.0 - description_weight) * cue).astype(np.float32)
        return out


# --------------------------------------------------------------------------- suggestions


def _theme(name: str, description: str, terms: str) -> Angle:
    return Angle(name, description, tuple(t.strip() for t in terms.split(",") if t.strip()))


#: Themes a reader's profile may call for beyond their current angles. One is proposed
#: only when the profile clearly speaks of it (meaning and words) and no chosen angle
#: already covers it.
THEME_CATALOG: tuple[Angle, ...] = (
    _theme(
        "ml inference serving",
        "Serving machine-learning models in production: inference platforms, GPU and accelerator "
        "utilization, request batching and routing, model rollout, and prediction latency at scale.",
        "inference, model serving, inference serving, ml inference, gpu, accelerator, tpu, batching,"
        " model deployment, llm serving, vllm, triton, kv cache, tokens per second, gpu utilization",
    ),
    _theme(
        "machine learning infrastructure",
        "Platforms for training ML models: training pipelines, feature stores, experimentation and "
        "evaluation systems, and the GPU clusters behind them.",
        "ml platform, training pipeline, feature store, model training, distributed training, mlops,"
        " gpu cluster, experimentation platform, model evaluation, training data",
    ),
    _theme(
        "search and recommendations",
        "How search and recommendation systems work: retrieval and ranking models, embeddings and "
        "vector search, relevance evaluation and personalization.",
        "search, ranking, retrieval, recommendation, recommender, embeddings, vector search,"
        " relevance, personalization, search index, learning to rank",
    ),
    _theme(
        "developer productivity and ci",
        "Making engineers faster: build systems, CI/CD pipelines, test infrastructure and flaky tests, "
        "code review and developer tooling.",
        "continuous integration, ci/cd, ci, build time, flaky tests, test flakiness, monorepo,"
        " developer productivity, code review, bazel, end-to-end testing, test coverage,"
        " developer experience, build system",
    ),
    _theme(
        "security and privacy engineering",
        "Building secure and private systems: encryption, authentication and access control, "
        "vulnerability handling, privacy and compliance engineering.",
        "security, privacy, encryption, end-to-end encryption, authentication, authorization,"
        " vulnerability, compliance, access control, zero trust, threat model",
    ),
    _theme(
        "data pipelines and streaming",
        "Moving data at scale: batch and streaming pipelines, Kafka and Spark, change data capture, "
        "data lakes and warehouses, and data quality.",
        "data pipeline, etl, kafka, spark, flink, data warehouse, stream processing, streaming,"
        " batch processing, data lake, change data capture, data quality, lineage",
    ),
    _theme(
        "databases and storage engines",
        "Inside databases and storage: query planning, indexes, transactions, replication and "
        "sharding, storage engines and caches.",
        "database, query planner, index, transactions, postgres, mysql, sql, storage engine,"
        " sharding, replication, b-tree, lsm, cache, key-value store",
    ),
    _theme(
        "messaging and real-time communication",
        "Chat, calling and notification systems: message delivery, VoIP and WebRTC, presence, push "
        "notifications and the protocols behind real-time communication.",
        "messaging, chat, voip, webrtc, voice calls, video calls, push notifications, websocket,"
        " presence, message delivery, real-time communication",
    ),
    _theme(
        "api design and integrations",
        "Designing and evolving APIs and platform integrations: REST, gRPC and GraphQL, third-party "
        "developer platforms, SDKs, versioning and backward compatibility.",
        "api, rest api, grpc, graphql, webhooks, third-party, sdk, protobuf, api versioning,"
        " backward compatibility, developer platform",
    ),
    _theme(
        "cloud infrastructure and kubernetes",
        "Running services on cloud infrastructure: Kubernetes and containers, deployment and rollout, "
        "autoscaling, infrastructure as code and multi-region operations.",
        "kubernetes, container, deployment, rollout, autoscaling, terraform, infrastructure as code,"
        " serverless, multi-region, cluster",
    ),
    _theme(
        "observability and on-call",
        "Seeing what production does: monitoring, alerting, tracing and logging, on-call practice and "
        "incident response tooling.",
        "monitoring, alerting, alerts, tracing, distributed tracing, logging, on-call, oncall, metrics,"
        " dashboards, observability, incident response",
    ),
    _theme(
        "frontend and web engineering",
        "Building web frontends: React and JavaScript architecture, rendering and page-load performance, "
        "design systems and browser APIs.",
        "react, javascript, typescript, frontend, web app, browser, css, page load, single-page app,"
        " design system",
    ),
    _theme(
        "mobile engineering",
        "Building mobile apps: iOS and Android architecture, app performance and size, release "
        "engineering and cross-platform frameworks.",
        "android, ios, swift, kotlin, mobile app, react native, app size, app startup",
    ),
    _theme(
        "networking",
        "Networks and protocols in production: TCP, QUIC and HTTP, DNS, CDNs and load balancing, "
        "routing and network performance.",
        "tcp, quic, http/3, dns, cdn, load balancer, load balancing, bgp, network, packet, routing,"
        " bandwidth",
    ),
    _theme(
        "compilers and programming languages",
        "How languages and runtimes work: compilers and JITs, type systems, garbage collection, "
        "WebAssembly and language design.",
        "compiler, jit, llvm, type system, garbage collector, runtime, webassembly, wasm, interpreter,"
        " language design, static analysis",
    ),
    _theme(
        "operating systems and kernels",
        "Operating-system internals in production: the Linux kernel, schedulers, eBPF, cgroups, memory "
        "management and file systems.",
        "linux kernel, kernel, scheduler, ebpf, cgroups, memory management, file system, syscall,"
        " virtualization, containers",
    ),
    _theme(
        "capacity and cost efficiency",
        "Using hardware well: capacity planning, utilization and elastic capacity, scheduling across "
        "mixed hardware, and reducing infrastructure cost.",
        "capacity planning, utilization, elastic capacity, capacity, cost efficiency, heterogeneous"
        " hardware, bin packing, resource allocation, autoscaling, infrastructure cost",
    ),
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _words(
    """a about above across after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each either
    etc few for from further had has have having he her here hers him his how i if in into is it
    its itself just me more most my no nor not now of off on once only or other our ours out over
    own per same she should so some such than that the their them then there these they this
    those through to too under until up upon us very via was we were what when where which while
    who whom why will with within without would you your"""
)
#: Resume and profile boilerplate that is never a topic by itself.
_PROFILE_NOISE = _words(
    """led lead leading drove drive driving owned own owning built build building designed design
    designing created create creating implemented implement implementing developed develop
    developing delivered deliver delivering improved improve improving enabled enable enabling
    managed manage worked work working helped help made make making used using achieved achieving
    reduced reducing increase increased increasing responsible including include includes
    team teams engineer engineers senior staff principal junior project projects initiative
    initiatives company companies product products customer customers partner partners
    cross-functional cross functional stakeholder stakeholders org org-wide organization role
    experience years year month months present now today current currently new next-generation
    first end extensive foundational various multiple several many large-scale large small
    high-scale internal external critical key major p0 primary ensure ensuring allowing allows
    allow future-proofing future contributed contributors contributor top half long
    half-long estimated approximately approx united states california university college school
    bachelor master degree diploma education science arts bs ms phd high mentor mentoring mentored
    talks talk technical influence impact closely early schedule ahead beta ship shipped shipping
    month-long ~ e.g i.e mr ms dr inc llc ltd corp co"""
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#/\-]*[A-Za-z0-9+#]|[A-Za-z]")
_UNIT_SPLIT = re.compile(r"\n+|(?<=[.;!?])\s+(?=[A-Z(])")
_CHUNK_SPLIT = re.compile(r"[,;:()\[\]{}|!?\"\u201c\u201d\u2018\u2019'\u2014\u2013]|\.(?:\s|$)|\s-\s|\n")

#: How fast later lines of a profile lose weight (line i weighs 1 / (1 + i x this)).
SUGGEST_RECENCY = 0.1
#: A unit (line or sentence) counts toward an angle by how far its meaning clears this.
SUGGEST_UNIT_FLOOR = 0.30
#: Per distinct cue term in a unit (up to three), on top of its meaning.
SUGGEST_TERM_WEIGHT = 0.05
#: Least total relevance for an angle to be suggested.
SUGGEST_MIN_RELEVANCE = 0.15
#: Distinct cue terms the profile must contain for an angle to be suggested...
SUGGEST_MIN_TERMS = 2
#: ...unless its relevance reaches this (then one cue term is enough).
SUGGEST_STRONG_RELEVANCE = 0.25
#: Descriptions closer than this mean "already covered".
SUGGEST_COVERED = 0.62
#: Least meaning score for a profile phrase (a single word) to join an angle's terms.
SUGGEST_PHRASE = 0.55
SUGGEST_WORD = 0.6
MAX_ADDED_TERMS = 5


def _profile_units(text: str) -> list[str]:
    """Lines and sentences of a profile, each a self-contained statement."""
    units: list[str] = []
    for raw in _UNIT_SPLIT.split(text):
        unit = " ".join(raw.strip(" \t-*\u2022\u00b7").split())
        if len(unit) >= 20 and sum(c.isalpha() for c in unit) >= 12:
            units.append(unit)
    return units


def candidate_phrases(text: str) -> Counter[str]:
    """Topic phrases of a profile, lowercase, with counts.

    A RAKE-style heuristic: runs of content words between stop words, resume boilerplate
    and punctuation; each run gives itself (up to three words) and its one- and two-word
    pieces. Robust, no tagger needed; the embedding step sorts good phrases from bad.
    """
    counts: Counter[str] = Counter()
    for chunk in _CHUNK_SPLIT.split(text):
        run: list[str] = []
        for token in [*_WORD.findall(chunk), ""]:
            low = token.lower()
            if low and low not in _STOPWORDS and low not in _PROFILE_NOISE and not low.isdigit():
                run.append(low)
                continue
            if run:
                found = set()
                if len(run) <= 3:
                    found.add(" ".join(run))
                for size in (1, 2):
                    for i in range(len(run) - size + 1):
                        found.add(" ".join(run[i : i + size]))
                counts.update(found)
            run = []
    return counts


def _good_term(phrase: str) -> bool:
    words = phrase.split()
    return (
        1 <= len(words) <= 2
        and all(len(w) >= 2 for w in words)
        and (len(words) > 1 or len(phrase) >= 4)
        and phrase[0].isalpha()
    )


def _suggest(
    profile_text: str, embedder: Embedder | None, *, existing: Sequence[Angle], limit: int
) -> list[Angle]:
    known = list(existing) or load_angles()
    units = _profile_units(profile_text)
    if not units or limit <= 0:
        return []
    known_keys = {a.name.casefold() for a in known}
    pool = known + [t for t in THEME_CATALOG if t.name.casefold() not in known_keys]
    matcher = _Matcher(pool)
    # Earlier lines weigh more: resumes and profiles lead with what matters now.
    weights = 1.0 / (1.0 + SUGGEST_RECENCY * np.arange(len(units), dtype=np.float32))
    unit_terms = np.zeros((len(units), len(pool)), dtype=np.float32)
    distinct: list[set[str]] = [set() for _ in pool]
    for u, unit in enumerate(units):
        for i, ev in enumerate(matcher.find("", unit)):
            unit_terms[u, i] = min(len(ev.counts), 3)
            distinct[i].update(ev.counts)

    protos: Prototypes | None = None
    if embedder is not None:
        protos = Prototypes.build(pool, embedder)
        meaning = protos.scores(embedder.embed(units), description_weight=0.5, top_terms=2)
        unit_score = np.maximum(0.0, meaning - SUGGEST_UNIT_FLOOR) + SUGGEST_TERM_WEIGHT * unit_terms
    else:
        unit_score = SUGGEST_TERM_WEIGHT * unit_terms
    relevance = (weights[:, None] * unit_score).sum(axis=0)

    def wanted(i: int) -> bool:
        n = len(distinct[i])
        if protos is None:  # words alone: ask for more of them
            return n >= SUGGEST_MIN_TERMS + 1 and relevance[i] >= SUGGEST_MIN_RELEVANCE / 2
        # Both signals agree: some relevance and two cue terms, or more relevance and one.
        return (n >= SUGGEST_MIN_TERMS and relevance[i] >= SUGGEST_MIN_RELEVANCE) or (
            n >= 1 and relevance[i] >= SUGGEST_STRONG_RELEVANCE
        )

    ranked = sorted((i for i in range(len(pool)) if wanted(i)), key=lambda i: -float(relevance[i]))
    covered = protos.descriptions @ protos.descriptions.T if protos is not None else None
    picked: list[int] = []
    for i in ranked:
        if covered is not None and i >= len(known) and any(covered[i, j] >= SUGGEST_COVERED for j in picked):
            continue
        picked.append(i)
        if len(picked) == limit:
            break

    added = _profile_terms(profile_text, pool, picked, protos, embedder)
    out: list[Angle] = []
    for i in picked:
        base = pool[i]
        found = [t for t in base.terms if t in distinct[i]]
        rest = [t for t in base.terms if t not in distinct[i]]
        out.append(
            Angle(
                base.name,
                base.description,
                _clean_terms([*found, *added[i], *rest]),
                base.exclude,
                base.guideline,
            )
        )
    return out


def _profile_terms(
    profile_text: str,
    pool: Sequence[Angle],
    picked: Sequence[int],
    protos: Prototypes | None,
    embedder: Embedder | None,
) -> dict[int, list[str]]:
    """Profile phrases closest in meaning to each picked angle (and to no other angle)."""
    added: dict[int, list[str]] = {i: [] for i in picked}
    if protos is None or embedder is None or not picked:
        return added
    phrases = [p for p, _ in candidate_phrases(profile_text).most_common(400) if _good_term(p)]
    if not phrases:
        return added
    scores = protos.scores(embedder.embed(phrases), description_weight=0.5, top_terms=2)
    owner = scores.argmax(axis=1)
    for i in picked:
        same = re.compile("|".join(_term_pattern(t) for t in pool[i].terms), re.IGNORECASE)
        order = np.argsort(-scores[:, i])
        for p in order:
            phrase, score = phrases[p], float(scores[p, i])
            if score < SUGGEST_PHRASE or len(added[i]) == MAX_ADDED_TERMS:
                break
            if owner[p] != i or (" " not in phrase and score < SUGGEST_WORD):
                continue
            if same.fullmatch(phrase) or any(phrase in t or t in phrase for t in added[i]):
                continue  # already a cue (or a plural of one), or overlaps one just added
            added[i].append(phrase)
    return added


def suggest_angles(
    profile_text: str,
    embedder: Embedder | None,
    *,
    existing: Sequence[Angle] = (),
    limit: int = 7,
) -> list[Angle]:
    """Propose angles for a reader from a resume or profile text, best first.

    The current angles (``existing``; the bundled seven when empty) that the profile speaks
    to come back with profile-specific cue terms added; themes from :data:`THEME_CATALOG`
    that the profile clearly calls for and no chosen angle covers come back as new angles.
    Each line or sentence of the profile counts toward an angle by how close its meaning is
    and how many of the angle's cue terms it uses, earlier lines weighing more. Without an
    embedder only the cue terms count.
    """
    return _suggest(profile_text, embedder, existing=existing, limit=limit)
