"""Storage of deep summaries: computed once per text, kept until the text changes.

Invariant: a stored summary was made from the article's current text. Writes that change
an article's text (a feed update, a newly extracted page) delete its summary in the same
transaction (engfeed.store, engfeed.store.pages); ``text_hash`` is checked as well when one
article is read, and ``method`` (the summariser's version and settings) when many are.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engfeed.store.pages import BODY_WORDS, Database
from engfeed.store.sql import select_in


class SummariesPart:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, article_id: int, text_hash: str) -> str | None:
        """The stored summary JSON for this text, or None (none yet, or made from other text)."""
        row = self._db.conn.execute(
            "SELECT data FROM summaries WHERE article_id = ? AND text_hash = ?", (article_id, text_hash)
        ).fetchone()
        return None if row is None else str(row[0])

    def missing(self, method: str, *, min_words: int, limit: int) -> list[int]:
        """Newest articles of at least ``min_words`` words with no summary made by ``method``."""
        rows = self._db.conn.execute(
            "SELECT a.id FROM articles a LEFT JOIN summaries s ON s.article_id = a.id AND s.method = ?"
            f" WHERE s.article_id IS NULL AND {BODY_WORDS} >= ?"
            " ORDER BY a.published DESC, a.id DESC LIMIT ?",
            (method, min_words, max(0, limit)),
        )
        return [int(r[0]) for r in rows]

    def made_at(self, article_id: int) -> datetime | None:
        """When the stored summary of this article was made (None: there is none)."""
        row = self._db.conn.execute(
            "SELECT created FROM summaries WHERE article_id = ?", (article_id,)
        ).fetchone()
        return None if row is None else datetime.fromtimestamp(int(row[0]), UTC)

    def get_many(self, article_ids: list[int], method: str) -> dict[int, str]:
        """Stored summaries (JSON) of many articles at once, made by ``method``."""
        found: dict[int, str] = {}
        sql = "SELECT article_id, data FROM summaries WHERE method = ? AND article_id IN ({ids})"
        found.update(
            (int(aid), str(data)) for aid, data in select_in(self._db.conn, sql, article_ids, before=[method])
        )
        return found

    def save(self, article_id: int, text_hash: str, method: str, data: str, *, now: datetime) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO summaries(article_id, text_hash, method, data, created) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(article_id) DO UPDATE SET text_hash = excluded.text_hash,"
                " method = excluded.method, data = excluded.data, created = excluded.created",
                (article_id, text_hash, method, data, int(now.timestamp())),
            )
