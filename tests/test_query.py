"""User text to FTS5 MATCH expressions: safe for any input, useful for real queries."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engfeed.query import MAX_TERM_CHARS, MAX_TERMS, fts_match, highlight_stems, query_terms, stem


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute(
        "CREATE VIRTUAL TABLE docs USING fts5(title, excerpt, body,"
        " tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.executemany(
        "INSERT INTO docs VALUES (?, ?, ?)",
        [
            ("Exactly-once delivery with Kafka", "Kafka transactions", "idempotent producers"),
            ("ML-KEM and Kyber in TLS", "post-quantum", "node.js and HTTP/3 clients"),
            ("Caching builds", "remote caches", "Bazel cached artifacts"),
            ("Café résumé", "naïve", "日本語のテキスト"),
        ],
    )
    return conn


def run(conn: sqlite3.Connection, expr: str) -> list[int]:
    return [r[0] for r in conn.execute("SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY rowid", (expr,))]


HOSTILE = [
    '"',
    '"unbalanced',
    'a "b" c',
    "AND (",
    "( OR )",
    "NOT kafka",
    "kafka AND",
    "*",
    "kafka*",
    "-kafka",
    "NEAR(kafka delivery, 2)",
    "title:kafka",
    "{title body}: kafka",
    "^kafka",
    "kafka + delivery",
    "a\x00b",
    "\x00\x01\x02",
    "🔥 kafka 🚀",
    "e\u0301t\u00e9",
    "\u0300\u0301",
    "_ __ ___",
    "x" * 10_000,
    "kafka " * 3000,
    "'; DROP TABLE docs; --",
    "\ud800 kafka",
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("mode", ["and", "or"])
def test_hostile_text_is_safe(fts: sqlite3.Connection, text: str, mode: str) -> None:
    expr = fts_match(text, mode=mode)  # type: ignore[arg-type]
    if expr is not None:
        run(fts, expr)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["and", "or"]))
def test_any_text_is_none_or_executes(fts: sqlite3.Connection, text: str, mode: str) -> None:
    expr = fts_match(text, mode=mode)  # type: ignore[arg-type]
    if expr is not None:
        run(fts, expr)


SYNTAX = st.sampled_from(
    ['"', "(", ")", "*", "-", "+", ":", "^", "{", "}", " AND ", " OR ", " NOT ", "NEAR", ","]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(SYNTAX, st.text(max_size=8)), max_size=30), st.sampled_from(["and", "or"]))
def test_fts_syntax_soup_is_safe(fts: sqlite3.Connection, parts: list[str], mode: str) -> None:
    expr = fts_match("".join(parts), mode=mode)  # type: ignore[arg-type]
    if expr is not None:
        run(fts, expr)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_terms_are_bounded_quoted_and_lowercase(text: str) -> None:
    terms = query_terms(text)
    assert len(terms) <= MAX_TERMS
    assert len(set(terms)) == len(terms)
    for t in terms:
        assert 0 < len(t) <= MAX_TERM_CHARS
        assert t == t.lower()
    expr = fts_match(text, mode="or")
    assert (expr is None) == (not terms)
    if expr is not None:
        assert expr.count('"') % 2 == 0
        assert expr.startswith('"') and expr.endswith('"')


def test_nothing_left_is_none() -> None:
    for text in ("", "   ", "the and of", "!!!", "🔥", "\x00", "___"):
        assert fts_match(text, mode="and") is None


def test_stopwords_dropped_and_terms_quoted() -> None:
    assert fts_match("How do I make the builds faster?", mode="and") == '"make" AND "builds" AND "faster"'
    assert fts_match("Kafka OR kafka", mode="or") == '"kafka"'
    assert fts_match('say "hi"', mode="and") == '"say" AND "hi"'
    assert query_terms("Netflix's ML-KEM rollout, node.js & HTTP/3.") == [
        "netflix",
        "ml-kem",
        "rollout",
        "node.js",
        "http/3",
    ]


def test_expressions_find_what_they_should(fts: sqlite3.Connection) -> None:
    assert run(fts, fts_match("kafka delivery", mode="and") or "") == [1]
    assert run(fts, fts_match("kafka bazel", mode="and") or "") == []
    assert run(fts, fts_match("kafka bazel", mode="or") or "") == [1, 3]
    assert run(fts, fts_match("ML-KEM", mode="and") or "") == [2]
    assert run(fts, fts_match("node.js HTTP/3", mode="and") or "") == [2]
    assert run(fts, fts_match("cafe resume", mode="and") or "") == [4]  # diacritics folded
    assert run(fts, fts_match("NOT kafka", mode="and") or "") == [1]  # a word, not an operator
    assert run(fts, fts_match("title:kafka", mode="and") or "") == []  # no column filter


def test_term_cap() -> None:
    text = " ".join(f"word{i}" for i in range(50))
    assert len(query_terms(text)) == MAX_TERMS
    assert len(query_terms("a" * 500)[0]) == MAX_TERM_CHARS


def test_stem_groups_variants() -> None:
    assert len({stem(w) for w in ("caching", "cache", "cached", "caches")}) == 1
    assert len({stem(w) for w in ("build", "builds", "building")}) == 1
    assert stem("run") == "run" and stem("running") == "run"
    assert highlight_stems(["node.js", "the"]) == frozenset({stem("node"), "js"})
