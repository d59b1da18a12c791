"""Turning what a reader types into something safe to search with.

Pure functions, no I/O. The one rule: user text never reaches FTS5 query syntax
unquoted. :func:`fts_match` tokenises the text into words, drops English stopwords and
emits every remaining word as a double-quoted FTS5 string (``"term"``, inner quotes
doubled), joined with ``AND`` or ``OR``. Inside quotes FTS5 treats everything as literal
text, so ``AND (``, ``*``, ``-``, ``NEAR``, ``col:`` and friends lose their meaning.

:func:`stem` is a small suffix stripper used to highlight and count query terms in
result passages ("caching" marks "cache", "cached" and "caches"); the FTS index itself
uses SQLite's porter tokenizer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Final, Literal

__all__ = [
    "MAX_TERMS",
    "MAX_TERM_CHARS",
    "STOPWORDS",
    "fts_match",
    "highlight_stems",
    "query_terms",
    "stem",
    "words",
]

MAX_TERMS: Final = 12
MAX_TERM_CHARS: Final = 64
#: Characters of user text looked at; a 10 kB paste is cut here before tokenising.
MAX_QUERY_CHARS: Final = 2000

# Joiners inside one query token: ``ML-KEM``, ``node.js``, ``HTTP/3``, ``don't``. Such a
# token is emitted as one quoted FTS5 string, which the tokenizer turns into a phrase.
_JOINERS: Final = frozenset("'’.-/")
_WORD: Final = re.compile(r"\w+")
_POSSESSIVE: Final = re.compile(r"['’]s$")

_STOPWORDS = """
    a about above after again against all almost also am an and any are aren't as at be
    because been before being below between both but by can can't cannot could couldn't did
    didn't do does doesn't doing don't down during each either else ever every few for from
    further get gets getting got had hadn't has hasn't have haven't having he her here hers
    herself him himself his how i if in into is isn't it it's its itself just let's me more
    most much must mustn't my myself no nor not now of off on once one only or other ought
    our ours ourselves out over own per quite rather really same shan't she should shouldn't
    so some such than that that's the their theirs them themselves then there there's these
    they this those through to too under until up upon us very via was wasn't we were
    weren't what what's when where which while who whom whose why will with within without
    won't would wouldn't yet you your yours yourself yourselves
"""
STOPWORDS: Final = frozenset(_STOPWORDS.split())


def words(text: str) -> list[str]:
    """Lower-cased word tokens (unicode word characters) of ``text``."""
    return [w.lower() for w in _WORD.findall(text)]


def _searchable(term: str) -> bool:
    # FTS5's unicode61 tokenizer keeps letters and digits only; a term made of nothing else
    # (``_``, ``__``) would become an empty phrase.
    return any(ch.isalnum() for ch in term)


@lru_cache(maxsize=4096)
def _is_word_char(ch: str) -> bool:
    # Letters, digits and combining marks (so "e" + U+0301 and Devanagari vowel signs stay
    # inside their word), plus "_" like regex \w.
    return ch == "_" or unicodedata.category(ch)[0] in "LNM"


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    pending = ""  # a joiner seen right after a word character
    for ch in text:
        if _is_word_char(ch):
            if pending:
                buf.append(pending)
                pending = ""
            buf.append(ch)
        elif ch in _JOINERS and buf and not pending:
            pending = ch
        else:
            if buf:
                out.append("".join(buf))
            buf, pending = [], ""
    if buf:
        out.append("".join(buf))
    return out


def query_terms(user_text: str) -> list[str]:
    """The distinct, lower-cased, non-stopword terms of ``user_text`` (at most ``MAX_TERMS``).

    Compound tokens (``ml-kem``, ``node.js``) are kept whole; a trailing possessive ``'s``
    is dropped. Each term is at most ``MAX_TERM_CHARS`` characters.
    """
    text = unicodedata.normalize("NFC", user_text[:MAX_QUERY_CHARS])
    seen: set[str] = set()
    out: list[str] = []
    for raw in _tokens(text):
        term = _POSSESSIVE.sub("", raw.lower())[:MAX_TERM_CHARS]
        if not term or term in STOPWORDS or term in seen or not _searchable(term):
            continue
        try:
            term.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot be bound as SQLite text
            continue
        seen.add(term)
        out.append(term)
        if len(out) >= MAX_TERMS:
            break
    return out


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts_match(user_text: str, *, mode: Literal["and", "or"]) -> str | None:
    """A safe FTS5 ``MATCH`` expression for ``user_text``, or None when no term is left.

    Every term is a quoted string, so no user character is ever read as FTS5 syntax.
    ``mode`` joins the terms with ``AND`` (all must occur) or ``OR`` (any may).
    """
    terms = query_terms(user_text)
    if not terms:
        return None
    joiner = " AND " if mode == "and" else " OR "
    return joiner.join(_quote(t) for t in terms)


# ---------------------------------------------------------------------------- stemming

_SUFFIXES: Final = (
    ("ational", "ate"),
    ("ization", "ize"),
    ("fulness", "ful"),
    ("iveness", "ive"),
    ("ations", "ate"),
    ("ation", "ate"),
    ("ingly", ""),
    ("edly", ""),
    ("ments", ""),
    ("ment", ""),
    ("ness", ""),
    ("ings", ""),
    ("ing", ""),
    ("ies", "y"),
    ("ied", "y"),
    ("ers", "er"),
    ("es", ""),
    ("ed", ""),
    ("ly", ""),
    ("s", ""),
)
_VOWEL: Final = re.compile(r"[aeiouy]")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English stemmer: ``caching``/``cached``/``caches``/``cache`` all give ``cach``.

    Deliberately conservative (the stem keeps at least three letters and a vowel); used
    only to decide which words of a passage to highlight and count as query matches.
    """
    w = word.lower()
    if len(w) <= 3 or not w.isalpha():
        return w
    for suffix, repl in _SUFFIXES:
        if w.endswith(suffix):
            base = w[: -len(suffix)] + repl
            if len(base) >= 3 and _VOWEL.search(base):
                w = base
                break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz" and w[-1].isalpha():
        w = w[:-1]  # running -> runn -> run
    return w


def highlight_stems(terms: Iterable[str]) -> frozenset[str]:
    """The stems of every word inside the given query terms (compounds are split)."""
    out: set[str] = set()
    for term in terms:
        for w in words(term):
            if w not in STOPWORDS:
                out.add(stem(w))
    return frozenset(out)
