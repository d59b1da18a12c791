"""Storage of mute rules and of what they hide (see engfeed.rules for the rules themselves).

Invariants:

* An article is *muted* when a rule of the reader matches it and the reader has not saved it.
  ``muted_sql()`` is that condition in SQL; the store's listings, counts and searches leave muted
  articles out unless asked to include them.
* Source and angle rules are matched in SQL when read, so they follow relabelling at once.
  Term and regex rules are matched in Python and their matches kept in ``mute_matches``: for
  every stored article when the rule is added (one transaction with the rule), then for each
  article when it is stored or its title or excerpt changes (``articles.mutes_checked`` goes
  back to 0 by trigger; :meth:`MutesPart.match_pending` matches those, inside the transaction
  that wrote them when the caller passes it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from engfeed.rules import MuteRule, RuleError
from engfeed.store.pages import Database
from engfeed.store.sql import Connection, in_chunks, select_in

#: The reader whose rules apply (the store's one implicit local user).
USER = 1


def _rule_matches(a: str) -> str:
    """True when rule ``m`` matches article ``a`` (saved or not). Rule values are compared
    with ``lower()`` on both sides: ``mute_rules.value`` is case-sensitive (regex rules may
    differ by case alone), so a case-insensitive column on the other side is not enough."""
    return (
        f"((m.kind = 'source' AND lower(m.value) = lower({a}.source_name))"
        f" OR (m.kind = 'angle' AND EXISTS (SELECT 1 FROM article_angles g"
        f" WHERE g.article_id = {a}.id AND lower(g.angle) = lower(m.value)))"
        f" OR (m.kind IN ('term', 'regex') AND EXISTS (SELECT 1 FROM mute_matches x"
        f" WHERE x.article_id = {a}.id AND x.rule_id = m.id)))"
    )


def _not_saved(a: str, user: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM reading_state r WHERE r.article_id = {a}.id"
        f" AND r.user_id = {user} AND r.saved = 1)"
    )


def muted_sql(alias: str = "a", user: int = USER) -> str:
    """SQL that is true when article ``alias`` is hidden by the reader's rules."""
    return (
        f"(EXISTS (SELECT 1 FROM mute_rules m WHERE m.user_id = {int(user)} AND {_rule_matches(alias)})"
        f" AND {_not_saved(alias, str(int(user)))})"
    )


_RULE_MATCHES = _rule_matches("a")
_NOT_SAVED = _not_saved("a", "?")

#: (title, excerpt) -> ids of the matching rules; None when the matcher could not finish (a
#: slow regex past its time budget): the article is matched again later.
Matcher = Callable[[str, str], list[int] | None]
#: The term and regex rules (as they are inside the writing transaction) -> their matcher.
MatcherFactory = Callable[[list[MuteRule]], Matcher]


_ADD_MATCH = "INSERT INTO mute_matches(rule_id, article_id) VALUES (?, ?) ON CONFLICT DO NOTHING"


class MutesPart:
    def __init__(self, db: Database) -> None:
        self._db = db

    def active(self, user: int = USER) -> bool:
        """Whether the reader has any rule (listings skip the mute condition when not)."""
        row = self._db.conn.execute("SELECT EXISTS (SELECT 1 FROM mute_rules WHERE user_id = ?)", (user,))
        return bool(row.fetchone()[0])

    def rules(self, user: int = USER, *, counted: bool = True) -> list[MuteRule]:
        """The reader's rules, oldest first, each with the number of articles it hides now
        (``counted=False``: without, which is much cheaper)."""
        if not counted:
            rows = self._db.conn.execute(
                "SELECT id, kind, value, created, 0 FROM mute_rules WHERE user_id = ? ORDER BY id", (user,)
            )
            return [_rule(r) for r in rows]
        rows = self._db.conn.execute(
            "SELECT m.id, m.kind, m.value, m.created,"
            f" (SELECT count(*) FROM articles a WHERE {_RULE_MATCHES} AND {_NOT_SAVED})"
            " FROM mute_rules m WHERE m.user_id = ? ORDER BY m.id",
            (user, user),
        )
        return [_rule(r) for r in rows]

    def rule(self, rule_id: int, user: int = USER) -> MuteRule | None:
        return next((r for r in self.rules(user) if r.id == rule_id), None)

    def find(self, kind: str, value: str, user: int = USER) -> MuteRule | None:
        """The rule of this kind and value (names and terms compared without case), if any."""
        # A regex may differ from another by case alone ((?-i) patterns); names and terms may not.
        same = "value = ?" if kind == "regex" else "lower(value) = lower(?)"
        row = self._db.conn.execute(
            f"SELECT id, kind, value, created, 0 FROM mute_rules WHERE user_id = ? AND kind = ? AND {same}",
            (user, kind, value),
        ).fetchone()
        return None if row is None else _rule(row)

    def count(self, user: int = USER) -> int:
        return int(
            self._db.conn.execute("SELECT count(*) FROM mute_rules WHERE user_id = ?", (user,)).fetchone()[0]
        )

    def preview(
        self, rule: MuteRule, matcher: Matcher | None, *, examples: int, user: int = USER
    ) -> tuple[int, list[int]]:
        """How many stored articles ``rule`` would hide (saved ones never), and the newest few.

        Source and angle rules are counted in SQL; term and regex rules by ``matcher`` over
        every stored title and excerpt."""
        conn = self._db.conn
        if rule.kind in ("source", "angle"):
            if rule.kind == "source":
                cond = "a.source_name = ? COLLATE NOCASE"
            else:
                cond = (
                    "EXISTS (SELECT 1 FROM article_angles g WHERE g.article_id = a.id"
                    " AND g.angle = ? COLLATE NOCASE)"
                )
            rows = conn.execute(
                f"SELECT a.id FROM articles a WHERE {cond} AND {_NOT_SAVED}"
                " ORDER BY a.published DESC, a.id DESC",
                (rule.value, user),
            ).fetchall()
            ids = [int(r[0]) for r in rows]
        else:
            assert matcher is not None
            saved = self._saved(conn, user)
            ids = [aid for aid in self._text_matches(conn, matcher) if aid not in saved]
        return len(ids), ids[:examples]

    def add(self, rule: MuteRule, matcher: Matcher | None, *, now: datetime, user: int = USER) -> int:
        """Save ``rule`` and, for a term or regex rule, its matches among all stored articles,
        in one transaction. ``matcher`` matches this rule alone (it gets the new rule's id via
        the returned matches, so it is called with a placeholder id of 0)."""
        with self._db.transaction() as tx:
            taken = self.find(rule.kind, rule.value, user)  # on tx's connection: inside the transaction
            if taken is not None:  # saved meanwhile (a form sent twice)
                raise RuleError(f"that rule exists already (rule {taken.id}: {rule.describe()})")
            cur = tx.execute(
                "INSERT INTO mute_rules(user_id, kind, value, created) VALUES (?, ?, ?, ?) RETURNING id",
                (user, rule.kind, rule.value, int(now.timestamp())),
            )
            rule_id = int(cur.fetchone()[0])
            if matcher is not None:
                tx.executemany(
                    _ADD_MATCH,
                    [(rule_id, aid) for aid in self._text_matches(tx, matcher)],
                )
        return rule_id

    def hidden_by(self, rule_id: int, *, examples: int, user: int = USER) -> tuple[int, list[int]]:
        """How many stored articles a saved rule hides, and the newest few (from what is
        stored: a term or regex rule is not matched again)."""
        rows = self._db.conn.execute(
            f"SELECT a.id FROM articles a JOIN mute_rules m ON m.id = ? AND m.user_id = ? AND {_RULE_MATCHES}"
            f" WHERE {_NOT_SAVED} ORDER BY a.published DESC, a.id DESC",
            (rule_id, user, user),
        ).fetchall()
        return len(rows), [int(r[0]) for r in rows[: max(0, examples)]]

    def remove(self, rule_id: int, user: int = USER) -> bool:
        """Delete a rule (its matches go with it); False when there is no such rule."""
        with self._db.transaction() as tx:
            cur = tx.execute("DELETE FROM mute_rules WHERE id = ? AND user_id = ?", (rule_id, user))
        return cur.rowcount > 0

    def match_pending(self, make_matcher: MatcherFactory, *, conn: Connection | None = None) -> int:
        """Match the articles stored or changed since they were last matched; returns how many.

        ``make_matcher`` gets the term and regex rules as they are inside the transaction (so a
        rule added or removed meanwhile is never half applied). Pass the writing transaction's
        ``conn`` to match new articles in the same commit that stores them (so a muted article
        is never visible, even for a moment)."""
        if conn is None:
            with self._db.transaction() as tx:
                return self._match_pending(tx, make_matcher)
        return self._match_pending(conn, make_matcher)

    def _match_pending(self, conn: Connection, make_matcher: MatcherFactory) -> int:
        rows = conn.execute("SELECT id, title, excerpt FROM articles WHERE mutes_checked = 0").fetchall()
        if not rows:
            return 0
        rules = [
            _rule(r)
            for r in conn.execute(
                "SELECT id, kind, value, created, 0 FROM mute_rules"
                " WHERE user_id = ? AND kind IN ('term', 'regex') ORDER BY id",
                (USER,),
            )
        ]
        matcher = make_matcher(rules)
        done: list[int] = []
        found: list[tuple[int, int]] = []
        for aid, title, excerpt in rows:
            matched = matcher(str(title), str(excerpt))
            if matched is None:
                continue  # left for a later pass
            done.append(int(aid))
            found.extend((rid, int(aid)) for rid in matched)
        for chunk, marks in in_chunks(done):
            conn.execute(f"DELETE FROM mute_matches WHERE article_id IN ({marks})", chunk)
            conn.execute(f"UPDATE articles SET mutes_checked = 1 WHERE id IN ({marks})", chunk)
        conn.executemany(_ADD_MATCH, found)
        return len(done)

    def muted_by(self, ids: Sequence[int], user: int = USER) -> dict[int, list[int]]:
        """For the muted ones among ``ids``: the ids of the rules that hide each."""
        out: dict[int, list[int]] = {}
        sql = (
            f"SELECT a.id, m.id FROM articles a JOIN mute_rules m ON m.user_id = ? AND {_RULE_MATCHES}"
            f" WHERE a.id IN ({{ids}}) AND {_NOT_SAVED} ORDER BY m.id"
        )
        for aid, rid in select_in(self._db.conn, sql, ids, before=[user], after=[user]):
            out.setdefault(int(aid), []).append(int(rid))
        return out

    @staticmethod
    def _text_matches(conn: Connection, matcher: Matcher) -> list[int]:
        """Ids of every stored article ``matcher`` matches, newest first."""
        rows = conn.execute("SELECT id, title, excerpt FROM articles ORDER BY published DESC, id DESC")
        return [int(aid) for aid, title, excerpt in rows if matcher(str(title), str(excerpt))]

    @staticmethod
    def _saved(conn: Connection, user: int) -> set[int]:
        rows = conn.execute("SELECT article_id FROM reading_state WHERE user_id = ? AND saved = 1", (user,))
        return {int(r[0]) for r in rows}


def _rule(row: Sequence[object]) -> MuteRule:
    rid, kind, value, created, hidden = row
    return MuteRule(
        kind=str(kind),
        value=str(value),
        id=int(str(rid)),
        created=datetime.fromtimestamp(int(str(created)), UTC),
        hidden=int(str(hidden)),
    )
