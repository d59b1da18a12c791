"""Storage of digest sends: at most one digest per reader and ISO week, across restarts.

A send *claims* its week before the message leaves (an insert that only one process can
win), and releases the claim when sending fails. So two senders (``serve``'s schedule and a
``digest --send`` at the same moment) never both send, and a crash between the SMTP
conversation and the commit skips that week rather than sending it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from engfeed.store.pages import Database

USER = 1


@dataclass(frozen=True, slots=True)
class DigestSend:
    """One recorded send (``articles`` is -1 while the send is in progress)."""

    week: str
    sent_at: datetime
    recipient: str
    articles: int


class DigestsPart:
    def __init__(self, db: Database) -> None:
        self._db = db

    def sent(self, week: str, user: int = USER) -> DigestSend | None:
        """The send recorded (or in progress) for this ISO week, if any."""
        row = self._db.conn.execute(
            "SELECT week, sent_at, recipient, articles FROM digest_sends WHERE user_id = ? AND week = ?",
            (user, week),
        ).fetchone()
        return None if row is None else _send(row)

    def last(self, user: int = USER) -> DigestSend | None:
        row = self._db.conn.execute(
            "SELECT week, sent_at, recipient, articles FROM digest_sends WHERE user_id = ?"
            " ORDER BY sent_at DESC LIMIT 1",
            (user,),
        ).fetchone()
        return None if row is None else _send(row)

    def claim(
        self, week: str, recipient: str, *, now: datetime, force: bool = False, user: int = USER
    ) -> bool:
        """Claim ``week`` for a send; False when it is taken (sent, or being sent). ``force``
        (a deliberate second send) goes ahead and keeps the earlier record until the new send
        is confirmed, so a failed resend never forgets the week's first send."""
        with self._db.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO digest_sends(user_id, week, sent_at, recipient, articles)"
                " VALUES (?, ?, ?, ?, -1) ON CONFLICT DO NOTHING",
                (user, week, int(now.timestamp()), recipient),
            )
        return cur.rowcount > 0 or force

    def confirm(self, week: str, recipient: str, articles: int, *, now: datetime, user: int = USER) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE digest_sends SET articles = ?, sent_at = ?, recipient = ?"
                " WHERE user_id = ? AND week = ?",
                (articles, int(now.timestamp()), recipient, user, week),
            )

    def release(self, week: str, user: int = USER) -> None:
        """Give up a claim whose send failed, so that a later try may send."""
        with self._db.transaction() as tx:
            tx.execute(
                "DELETE FROM digest_sends WHERE user_id = ? AND week = ? AND articles = -1", (user, week)
            )

    def unsubscribed(self, address: str) -> datetime | None:
        """When ``address`` unsubscribed from the weekly digest (None: it did not)."""
        row = self._db.conn.execute("SELECT at FROM digest_unsubscribes WHERE address = ?", (address,))
        found = row.fetchone()
        return None if found is None else datetime.fromtimestamp(int(found[0]), UTC)

    def set_subscribed(self, address: str, subscribed: bool, *, now: datetime) -> None:
        with self._db.transaction() as tx:
            if subscribed:
                tx.execute("DELETE FROM digest_unsubscribes WHERE address = ?", (address,))
            else:
                tx.execute(
                    "INSERT INTO digest_unsubscribes(address, at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (address, int(now.timestamp())),
                )


def _send(row: tuple[object, ...]) -> DigestSend:
    week, sent_at, recipient, articles = row
    return DigestSend(
        str(week), datetime.fromtimestamp(int(str(sent_at)), UTC), str(recipient), int(str(articles))
    )
