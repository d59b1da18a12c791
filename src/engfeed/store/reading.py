"""Storage of the reader's state: saved, read, notes, and the reading list (``store.reading``).

Per user (``USER``, the one local reader until there are accounts). Saving an article that is
already saved keeps its first ``saved_at``; importing a reading list happens in one
transaction, so a crash leaves the old state or the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from engfeed.models import Article, ArticleFilter
from engfeed.store.rows import ARTICLE_COLUMNS, article_row, dicts, to_ts
from engfeed.store.sql import Connection, select_in
from engfeed.store.vectors import SET_META

if TYPE_CHECKING:
    from engfeed.store.base import Store

__all__ = ["ReadingPart"]

USER = 1


class ReadingPart:
    def __init__(self, db: Store) -> None:
        self._db = db

    def states(self, ids: Sequence[int], user: int = USER) -> dict[int, tuple[object, ...]]:
        """(saved, read, note, saved_at, read_at) per article id that has any state."""
        out: dict[int, tuple[object, ...]] = {}
        sql = (
            "SELECT article_id, saved, read, note, saved_at, read_at FROM reading_state"
            " WHERE user_id = ? AND article_id IN ({ids})"
        )
        for row in select_in(self._db.conn, sql, ids, before=[user]):
            out[int(row[0])] = tuple(row[1:])
        return out

    def set_saved(self, ids: Sequence[int], saved: bool, *, when: datetime, user: int = USER) -> None:
        """Put articles on the reading list (``saved_at`` = ``when``) or take them off.
        Saving an article already saved keeps its first ``saved_at``."""
        ts = to_ts(when)
        with self._db.transaction() as tx:
            tx.executemany(
                "INSERT INTO reading_state(user_id, article_id, saved, saved_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(user_id, article_id) DO UPDATE SET saved = excluded.saved,"
                " saved_at = CASE WHEN excluded.saved != 0"
                " THEN coalesce(reading_state.saved_at, excluded.saved_at) ELSE NULL END",
                [(user, aid, int(saved), ts if saved else None) for aid in ids],
            )

    def set_read(self, ids: Sequence[int], read: bool, *, when: datetime, user: int = USER) -> None:
        ts = to_ts(when)
        with self._db.transaction() as tx:
            tx.executemany(
                "INSERT INTO reading_state(user_id, article_id, read, read_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(user_id, article_id) DO UPDATE SET read = excluded.read,"
                " read_at = excluded.read_at",
                [(user, aid, int(read), ts if read else None) for aid in ids],
            )

    def mark_read_through(
        self, flt: ArticleFilter, through: tuple[int, int], *, when: datetime, user: int = USER
    ) -> int:
        """Mark read every article of a listing from its top down to ``through`` (a keyset
        position: published, id), inclusive ("mark all above as read"). Returns how many."""
        where, params = self._db.filter_sql(flt)
        ts = to_ts(when)
        with self._db.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO reading_state(user_id, article_id, read, read_at)"
                f" SELECT ?, a.id, 1, ? FROM articles a WHERE {where} AND (a.published, a.id) >= (?, ?)"
                " ON CONFLICT(user_id, article_id) DO UPDATE SET read = 1,"
                " read_at = coalesce(reading_state.read_at, excluded.read_at)",
                [user, ts, *params, through[0], through[1]],
            )
            return max(0, cur.rowcount)

    def set_note(self, article_id: int, note: str | None, *, when: datetime, user: int = USER) -> None:
        """Replace the reader's note on an article (``None`` clears it)."""
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO reading_state(user_id, article_id, note, noted_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(user_id, article_id) DO UPDATE SET note = excluded.note,"
                " noted_at = excluded.noted_at",
                (user, article_id, note, to_ts(when)),
            )

    def saved_articles(self, *, since: datetime | None = None, user: int = USER) -> list[Article]:
        """Saved articles, newest saved first (``since``: saved on or after)."""
        sql = (
            f"SELECT {ARTICLE_COLUMNS} FROM reading_state r JOIN articles a ON a.id = r.article_id"
            " WHERE r.user_id = ? AND r.saved = 1"
        )
        params: list[object] = [user]
        if since is not None:
            sql += " AND r.saved_at >= ?"
            params.append(to_ts(since))
        sql += " ORDER BY r.saved_at DESC, a.id DESC"
        return self._db.with_state([article_row(r) for r in dicts(self._db.conn.execute(sql, params))])

    def import_list(
        self,
        entries: Sequence[tuple[Article, str | None]],
        *,
        when: datetime,
        meta: Sequence[tuple[str, str]] = (),
        user: int = USER,
    ) -> tuple[int, int]:
        """Save every entry (an article to match by ``uid``/URL, stored as a link-only article
        when there is none) with its note, and set the ``meta`` keys (the list's title and tags),
        in one transaction: a crash leaves the old state or the new one. Saving order follows
        ``entries`` (the first is the newest saved, as in an exported list). Returns (matched,
        created)."""
        matched = created = 0
        base = to_ts(when)
        with self._db.transaction() as tx:
            tx.executemany(SET_META, list(meta))
            for position, (art, note) in enumerate(entries):
                aid = self._existing_id(tx, art)
                if aid is None:
                    written = self._db.upsert_articles([art], source_id=None, conn=tx)
                    aid = written.new[0] if written.new else self._existing_id(tx, art)
                    created += 1
                else:
                    matched += 1
                if aid is None:
                    continue
                ts = base - position  # keeps the list's order: newest saved first
                tx.execute(
                    "INSERT INTO reading_state(user_id, article_id, saved, saved_at, note, noted_at)"
                    " VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT(user_id, article_id) DO UPDATE SET saved = 1,"
                    " saved_at = coalesce(reading_state.saved_at, excluded.saved_at),"
                    " note = coalesce(excluded.note, reading_state.note),"
                    " noted_at = CASE WHEN excluded.note IS NULL THEN reading_state.noted_at"
                    " ELSE excluded.noted_at END",
                    (user, aid, ts, note, base if note is not None else None),
                )
        return matched, created

    @staticmethod
    def _existing_id(conn: Connection, art: Article) -> int | None:
        row = conn.execute("SELECT id FROM articles WHERE uid = ?", (art.uid,)).fetchone()
        if row is None:
            row = conn.execute("SELECT article_id FROM article_aliases WHERE uid = ?", (art.uid,)).fetchone()
        if row is None and art.url:
            row = conn.execute(
                "SELECT id FROM articles WHERE url = ? ORDER BY id LIMIT 1", (art.url,)
            ).fetchone()
        return None if row is None else int(row[0])
