"""Query-term stems in article text: finding them, clipping around them, marking them."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache

from engfeed.query import highlight_stems, stem
from engfeed.search.passages import PASSAGE_CHARS

__all__ = ["clip", "last_possible_match", "mark", "overlap", "usable_stems"]


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


def last_possible_match(text: str, stems: frozenset[str]) -> int | None:
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


def overlap(text: str, stems: frozenset[str]) -> float:
    """Share of the query's stems found in ``text`` (0..1)."""
    if not stems:
        return 0.0
    return len({st for _, st in _stems_in(text, stems)}) / len(stems)


def clip(text: str, stems: frozenset[str], size: int = PASSAGE_CHARS) -> str:
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
