"""Storage of the reader's angle feedback (see engfeed.angles_feedback for how it is used).

Invariant: at most one verdict per (user, article, angle); a new verdict replaces the old,
and clearing removes it. Verdicts follow their article (deleted with it, kept across feed
updates and re-labelling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engfeed.store.pages import Database
from engfeed.store.sql import Connection, select_in

USER = 1


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    article_id: int
    angle: str
    verdict: int  # +1: the angle applies; -1: it does not
    created: datetime
    url: str = ""
    uid: str = ""
    title: str = ""


SERIAL_KEY = "angles.feedback_serial"
_BUMP_SERIAL = (
    "INSERT INTO meta(key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE"
    " SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)"
)

#: One verdict, replacing the reader's earlier one on the same angle (names compared
#: without case; the new spelling is kept).
_SET_VERDICT = (
    "INSERT INTO angle_feedback(user_id, article_id, angle, verdict, created) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT(user_id, article_id, angle) DO UPDATE SET angle = excluded.angle,"
    " verdict = excluded.verdict, created = excluded.created"
)


def _forget(tx: Connection, user: int, pairs: Sequence[tuple[int, str]]) -> None:
    """Delete the reader's verdicts on these (article id, angle), whatever the case of the
    name each was given under: the column's NOCASE folds ASCII only (SQLite), and "Überblick"
    renamed "überblick" is the same angle to the labeller (names compare with ``casefold``).
    One read of the articles' verdicts, one batch of deletes."""
    wanted = {(aid, angle.casefold()) for aid, angle in pairs}
    stored = select_in(
        tx,
        "SELECT article_id, angle FROM angle_feedback WHERE user_id = ? AND article_id IN ({ids})",
        sorted({aid for aid, _ in pairs}),
        before=(user,),
    )
    gone = [(user, int(aid), str(name)) for aid, name in stored if (int(aid), str(name).casefold()) in wanted]
    if gone:
        tx.executemany("DELETE FROM angle_feedback WHERE user_id = ? AND article_id = ? AND angle = ?", gone)


class FeedbackPart:
    def __init__(self, db: Database) -> None:
        self._db = db

    def set(
        self, article_id: int, angle: str, verdict: int | None, *, now: datetime, user: int = USER
    ) -> None:
        """Record ``verdict`` (+1 or -1) on ``angle`` for the article; None clears it."""
        with self._db.transaction() as tx:
            tx.execute(_BUMP_SERIAL, (SERIAL_KEY,))
            _forget(tx, user, [(article_id, angle)])
            if verdict is not None:
                tx.execute(
                    _SET_VERDICT,
                    (user, article_id, angle, 1 if verdict > 0 else -1, int(now.timestamp())),
                )

    def set_many(self, rows: Sequence[tuple[int, str, int]], *, now: datetime, user: int = USER) -> None:
        """Record many (article id, angle, verdict) at once, in one transaction."""
        with self._db.transaction() as tx:
            tx.execute(_BUMP_SERIAL, (SERIAL_KEY,))
            _forget(tx, user, [(aid, angle) for aid, angle, _ in rows])
            tx.executemany(
                _SET_VERDICT,
                [(user, aid, angle, 1 if v > 0 else -1, int(now.timestamp())) for aid, angle, v in rows],
            )

    def all(self, user: int = USER) -> list[FeedbackRow]:
        """Every verdict of the reader, oldest first, with its article's URL, id and title."""
        rows = self._db.conn.execute(
            "SELECT f.article_id, f.angle, f.verdict, f.created, a.url, a.uid, a.title"
            " FROM angle_feedback f JOIN articles a ON a.id = f.article_id"
            " WHERE f.user_id = ? ORDER BY f.created, f.article_id, f.angle",
            (user,),
        )
        return [
            FeedbackRow(
                int(aid), str(angle), int(v), datetime.fromtimestamp(int(c), UTC), str(url), str(uid), str(t)
            )
            for aid, angle, v, c, url, uid, t in rows
        ]

    def for_article(self, article_id: int, user: int = USER) -> dict[str, int]:
        """The verdicts on one article, by angle name."""
        rows = self._db.conn.execute(
            "SELECT angle, verdict FROM angle_feedback WHERE user_id = ? AND article_id = ?",
            (user, article_id),
        )
        return {str(angle): int(v) for angle, v in rows}

    def version(self) -> int:
        """A serial that every write of verdicts moves, in the same transaction, whichever
        process makes it: a process holding a feedback model built at another serial is stale."""
        row = self._db.conn.execute("SELECT value FROM meta WHERE key = ?", (SERIAL_KEY,)).fetchone()
        return int(row[0]) if row else 0

    def count(self, user: int = USER) -> int:
        row = self._db.conn.execute("SELECT count(*) FROM angle_feedback WHERE user_id = ?", (user,))
        return int(row.fetchone()[0])
