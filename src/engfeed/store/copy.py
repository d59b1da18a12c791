"""Moving a whole store to another one, on either backend (``engfeed db copy``).

Every table that holds the reader's data is copied row for row, ids included, parents
before children: sources, articles (the full-text index follows by itself: triggers on
SQLite, a generated column on PostgreSQL), vectors and passages, angles in their labelled
order, reading state, pages, summaries, rules, digests, verdicts and the store's meta.
Derived structures are rebuilt by the destination, never copied.

The destination must hold no articles, sources or reading state yet, so a copy never merges
two stores. Each batch is one transaction on the destination; a copy that stops half way
leaves a partial destination, which the count check of a second try reports (empty it and
run again). The check compares every table's row count at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engfeed.errors import StoreError
from engfeed.store.base import Store

__all__ = ["COPIED_TABLES", "CopyReport", "copy_store"]

#: (table, columns, order) of every copied table, parents first. Generated columns (the
#: PostgreSQL tsvector and angle order) are left out: the destination makes its own.
COPIED_TABLES: tuple[tuple[str, str, str], ...] = (
    ("users", "id, name, created", "id"),
    (
        "sources",
        "id, name, url, site_url, etag, last_modified, last_attempt, last_success, http_status, error,"
        " failures, next_due, added",
        "id",
    ),
    (
        "articles",
        "id, uid, source_id, source_name, url, guid, title, author, tags, published, updated,"
        " date_estimated, first_seen, summary_html, content_html, excerpt, body, content_hash,"
        " angles_sig, text_source, mutes_checked",
        "id",
    ),
    ("article_aliases", "uid, article_id", "uid"),
    ("embeddings", "article_id, model, vec, passages_pending", "article_id"),
    ("passages", "article_id, seq, model, text, vec", "article_id, seq"),
    ("article_angles", "article_id, angle, terms, score", "rowid"),  # the labeller's order
    (
        "reading_state",
        "user_id, article_id, saved, saved_at, read, read_at, note, noted_at",
        "user_id, article_id",
    ),
    (
        "article_pages",
        "article_id, status, reason, url, html, words, http_status, etag, last_modified, fetched, attempts,"
        " next_try",
        "article_id",
    ),
    ("robots", "origin, fetched, body, allow_all, deny_all", "origin"),
    ("summaries", "article_id, text_hash, method, data, created", "article_id"),
    ("mute_rules", "id, user_id, kind, value, created", "id"),
    ("mute_matches", "rule_id, article_id", "article_id, rule_id"),
    ("digest_sends", "user_id, week, sent_at, recipient, articles", "user_id, week"),
    ("digest_unsubscribes", "address, at", "address"),
    ("angle_feedback", "user_id, article_id, angle, verdict, created", "user_id, article_id, angle"),
    ("meta", "key, value", "key"),
)
#: Rows per read and per destination transaction.
BATCH = 2000
#: Tables a new store may already hold rows in: the seeded local user and the store's own
#: settings. Every other copied table must be empty in the destination: a rule, verdict or
#: digest already there would silently win over the copied one (inserts skip conflicts).
SEEDED = ("users", "meta")

#: (table, rows copied so far, rows in the table)
CopyProgress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class CopyReport:
    """Rows per table, in the source and (after the copy) in the destination."""

    source: str
    destination: str
    rows: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def copy_store(src: Store, dest: Store, *, progress: CopyProgress | None = None) -> CopyReport:
    """Copy everything in ``src`` into the empty store ``dest`` (see module doc). Raises
    :class:`StoreError` when ``dest`` is not empty or the counts differ afterwards."""
    for table in (t for t, _, _ in COPIED_TABLES if t not in SEEDED):
        if _count(dest, table):
            raise StoreError(
                f"the destination store is not empty ({table} has rows); copy only into a new store"
            )
    _check_source_names(src)
    expected = {table: _count(src, table) for table, _, _ in COPIED_TABLES}
    for table, columns, order in COPIED_TABLES:
        _copy_table(src, dest, table, columns, order, expected[table], progress)
    dest.after_bulk_load(progress)
    found = {table: _count(dest, table) for table, _, _ in COPIED_TABLES}
    # meta may gain a key the destination set itself (its schema's); nothing else may differ
    wrong = [
        f"{t}: {expected[t]} -> {found[t]}"
        for t in expected
        if found[t] < expected[t] or (found[t] != expected[t] and t not in SEEDED)
    ]
    if wrong:
        raise StoreError("the copy is incomplete (" + "; ".join(wrong) + ")")
    return CopyReport(src.location_shown, dest.location_shown, expected)


def _check_source_names(src: Store) -> None:
    """Refuse, before anything is written, source names that differ only in case beyond
    ASCII ("Über", "über"): SQLite keeps both, PostgreSQL's citext holds them as one name."""
    seen: dict[str, str] = {}
    for source in src.sources():
        other = seen.setdefault(source.name.lower(), source.name)  # as citext compares
        if other != source.name:
            raise StoreError(
                f"the sources {other!r} and {source.name!r} differ only in case, which a PostgreSQL"
                " store cannot tell apart; remove one (engfeed sources remove NAME) and copy again"
            )


def _copy_table(
    src: Store,
    dest: Store,
    table: str,
    columns: str,
    order: str,
    total: int,
    progress: CopyProgress | None,
) -> None:
    width = len(columns.split(","))
    conflict = (
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        if table == "meta"
        else "ON CONFLICT DO NOTHING"
    )
    insert = f"INSERT INTO {table}({columns}) VALUES ({','.join('?' * width)}) {conflict}"
    done = 0
    if progress:
        progress(table, 0, total)
    while True:
        rows = src.conn.execute(
            f"SELECT {columns} FROM {table} ORDER BY {order} LIMIT ? OFFSET ?", (BATCH, done)
        ).fetchall()
        if not rows:
            break
        with dest.transaction() as tx:
            tx.executemany(insert, [tuple(_plain(v) for v in row) for row in rows])
        done += len(rows)
        if progress:
            progress(table, done, total)
        if len(rows) < BATCH:
            break


def _plain(value: object) -> object:
    return bytes(value) if isinstance(value, memoryview) else value


def _count(store: Store, table: str) -> int:
    return int(store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
