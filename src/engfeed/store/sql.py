"""What the store's SQL runs on, on either backend, and the helpers shared by its parts.

The store writes its SQL once, in the dialect both backends accept (``?`` parameters,
``INSERT ... ON CONFLICT``, ``RETURNING``, ``COLLATE NOCASE``: PostgreSQL gets a collation
of that name), against :class:`Connection`: a ``sqlite3.Connection`` is one as it is, and
``engfeed.store.postgres`` wraps psycopg's. What the two engines do differently (full text,
migrations, change detection, connections) lives in the backend's own module.

``IN (...)`` lists of article ids are sent in chunks: SQLite caps the host parameters of one
statement (999 before 3.32), and a store asks for thousands of ids at a time (a search's
candidates, a refresh's new articles).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

__all__ = ["IN_CHUNK", "Connection", "Cursor", "cursors_in", "in_chunks", "select_in"]


class Cursor(Protocol):
    """The rows of one statement (the DB-API subset the store uses)."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """One database connection: statements with ``?`` parameters."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


#: Ids per ``IN (...)`` list: far below the cap, leaving room for a statement's other parameters.
IN_CHUNK = 500


def in_chunks(ids: Sequence[int], size: int = IN_CHUNK) -> Iterator[tuple[list[int], str]]:
    """``ids`` in chunks of at most ``size``, each with its ``?,?,...`` placeholders."""
    items = list(ids)
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        yield chunk, ",".join("?" * len(chunk))


def cursors_in(
    conn: Connection,
    sql: str,
    ids: Sequence[int],
    *,
    before: Sequence[object] = (),
    after: Sequence[object] = (),
) -> Iterator[Cursor]:
    """Run ``sql`` once per chunk of ``ids``: ``{ids}`` in it stands for the ``IN`` list,
    ``before`` and ``after`` are the statement's parameters on either side of it."""
    for chunk, marks in in_chunks(ids):
        yield conn.execute(sql.replace("{ids}", marks), [*before, *chunk, *after])


def select_in(
    conn: Connection,
    sql: str,
    ids: Sequence[int],
    *,
    before: Sequence[object] = (),
    after: Sequence[object] = (),
) -> Iterator[Any]:
    """The rows of :func:`cursors_in`, chunk after chunk."""
    for cursor in cursors_in(conn, sql, ids, before=before, after=after):
        yield from cursor
