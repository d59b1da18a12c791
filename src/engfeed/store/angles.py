"""Storage of the useful angles the labeller gave each article (``store.angles``).

Each article keeps the signature of the labeller that labelled it (``articles.angles_sig``):
a changed labeller, or a changed article (its signature is cleared), makes it due again
(:meth:`AnglesPart.needing`). Angles are read back in the order the labeller gave them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from engfeed.models import AngleMatch
from engfeed.store.pages import Database
from engfeed.store.sql import select_in

__all__ = ["AnglesPart"]


class AnglesPart:
    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, labels: Iterable[tuple[int, Sequence[AngleMatch]]], signature: str) -> None:
        """Replace the angles of the given articles and mark them labelled by ``signature``."""
        with self._db.transaction() as tx:
            for aid, matches in labels:
                tx.execute("UPDATE articles SET angles_sig = ? WHERE id = ?", (signature, aid))
                tx.execute("DELETE FROM article_angles WHERE article_id = ?", (aid,))
                tx.executemany(
                    "INSERT INTO article_angles(article_id, angle, terms, score) VALUES (?, ?, ?, ?)",
                    [(aid, m.name, json.dumps(list(m.terms)), m.score) for m in matches],
                )

    def needing(self, signature: str) -> list[int]:
        rows = self._db.conn.execute(
            "SELECT id FROM articles WHERE angles_sig IS NULL OR angles_sig != ? ORDER BY id", (signature,)
        )
        return [r[0] for r in rows]

    def counts(self) -> list[tuple[str, int]]:
        rows = self._db.conn.execute(
            "SELECT angle, count(*) FROM article_angles GROUP BY angle ORDER BY 2 DESC"
        )
        return [(r[0], r[1]) for r in rows]

    def coverage(self) -> tuple[int, int]:
        """(articles with at least one angle, all articles)."""
        row = self._db.conn.execute(
            "SELECT (SELECT count(DISTINCT article_id) FROM article_angles), (SELECT count(*) FROM articles)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def of(self, ids: Sequence[int]) -> dict[int, list[AngleMatch]]:
        """The stored angles per article id, in the labeller's order."""
        found: dict[int, list[AngleMatch]] = {}
        sql = (
            "SELECT article_id, angle, terms, score FROM article_angles WHERE article_id IN ({ids})"
            " ORDER BY rowid"  # the labeller's order: save inserts the first angle first
        )
        for aid, angle, terms, score in select_in(self._db.conn, sql, ids):
            found.setdefault(aid, []).append(AngleMatch(angle, tuple(json.loads(terms)), score))
        return found
