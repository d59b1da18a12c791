"""SQL helpers shared by the store and its parts (SQLite only).

``IN (...)`` lists of article ids are sent in chunks: SQLite caps the host parameters of one
statement (999 before 3.32), and a store asks for thousands of ids at a time (a search's
candidates, a refresh's new articles).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["IN_CHUNK", "cursors_in", "in_chunks", "select_in"]

#: Ids per ``IN (...)`` list: far below the cap, leaving room for a statement's other parameters.
IN_CHUNK = 500


def in_chunks(ids: Sequence[int], size: int = IN_CHUNK) -> Iterator[tuple[list[int], str]]:
    """``ids`` in chunks of at most ``size``, each with its ``?,?,...`` placeholders."""
    items = list(ids)
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        yield chunk, ",".join("?" * len(chunk))


def cursors_in(
    conn: sqlite3.Connection,
    sql: str,
    ids: Sequence[int],
    *,
    before: Sequence[object] = (),
    after: Sequence[object] = (),
) -> Iterator[sqlite3.Cursor]:
    """Run ``sql`` once per chunk of ``ids``: ``{ids}`` in it stands for the ``IN`` list,
    ``before`` and ``after`` are the statement's parameters on either side of it."""
    for chunk, marks in in_chunks(ids):
        yield conn.execute(sql.replace("{ids}", marks), [*before, *chunk, *after])


def select_in(
    conn: sqlite3.Connection,
    sql: str,
    ids: Sequence[int],
    *,
    before: Sequence[object] = (),
    after: Sequence[object] = (),
) -> Iterator[Any]:
    """The rows of :func:`cursors_in`, chunk after chunk."""
    for cursor in cursors_in(conn, sql, ids, before=before, after=after):
        yield from cursor
