"""Storage of embeddings: one document vector per article and the passages of the longer ones.

A part of the store in domain words (``store.vectors``). Articles are embedded in two passes:
:meth:`VectorsPart.save_documents` stores each article's document vector and marks the ones
whose passages are still to come (a token from a counter in ``meta``, never reused), and
:meth:`VectorsPart.save_passages` stores those passages and clears the mark, unless a newer
text marked the article again meanwhile. Vectors are float32 bytes; the search index loads
them in id order (:meth:`VectorsPart.load_after`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from engfeed.store.pages import Database
from engfeed.store.sql import select_in

__all__ = ["PASSAGE_TOKEN", "SET_META", "VectorsPart"]

#: The meta key of the counter that numbers "passages pending" marks (see save_documents).
PASSAGE_TOKEN = "passages.token"
SET_META = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"


class VectorsPart:
    def __init__(self, db: Database) -> None:
        self._db = db

    def missing(self, model: str) -> list[int]:
        rows = self._db.conn.execute(
            "SELECT a.id FROM articles a LEFT JOIN embeddings e ON e.article_id = a.id"
            " WHERE e.article_id IS NULL OR e.model != ? ORDER BY a.id",
            (model,),
        )
        return [r[0] for r in rows]

    def save(self, model: str, items: Iterable[tuple[int, bytes]]) -> None:
        """Store document vectors whose passages are already stored (or that have none)."""
        with self._db.transaction() as tx:
            tx.executemany(
                "INSERT INTO embeddings(article_id, model, vec) VALUES (?, ?, ?) ON CONFLICT(article_id)"
                " DO UPDATE SET model = excluded.model, vec = excluded.vec, passages_pending = 0",
                ((aid, model, blob) for aid, blob in items),
            )

    def save_documents(self, model: str, items: Iterable[tuple[int, bytes, bool]]) -> None:
        """Store ``(article id, vector, passages to come)``: the first of the two embedding
        passes. Every article loses its old passages here (they belong to its old text or
        model); one whose passages are to come is listed by :meth:`pending`, with a
        fresh token, until :meth:`save_passages` stores the new ones."""
        items = list(items)
        with self._db.transaction() as tx:
            # Tokens from a counter in meta, taken under the store's write lock: never reused,
            # so a second pass that read an older text never clears a newer mark (save_passages).
            row = tx.execute("SELECT value FROM meta WHERE key = ?", (PASSAGE_TOKEN,)).fetchone()
            token = int(row[0]) if row is not None else 0
            rows = []
            for aid, blob, pending in items:
                token += 1 if pending else 0
                rows.append((aid, model, blob, token if pending else 0))
            tx.execute(SET_META, (PASSAGE_TOKEN, str(token)))
            tx.executemany(
                "INSERT INTO embeddings(article_id, model, vec, passages_pending) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(article_id) DO UPDATE SET model = excluded.model, vec = excluded.vec,"
                " passages_pending = excluded.passages_pending",
                rows,
            )
            tx.executemany("DELETE FROM passages WHERE article_id = ?", [(r[0],) for r in rows])

    def pending(self, model: str) -> dict[int, int]:
        """{article id: token} of the articles with a document vector of ``model`` whose
        passages are still to be embedded (read the token before the text)."""
        rows = self._db.conn.execute(
            "SELECT article_id, passages_pending FROM embeddings"
            " WHERE model = ? AND passages_pending != 0 ORDER BY article_id",
            (model,),
        )
        return {int(r[0]): int(r[1]) for r in rows}

    def pending_ids(self, model: str) -> list[int]:
        """The article ids of :meth:`pending`, in id order."""
        return list(self.pending(model))

    def load(self, model: str) -> tuple[list[int], list[bytes]]:
        ids: list[int] = []
        blobs: list[bytes] = []
        for aid, blob in self._db.conn.execute(
            "SELECT article_id, vec FROM embeddings WHERE model = ? ORDER BY article_id", (model,)
        ):
            ids.append(aid)
            blobs.append(blob)
        return ids, blobs

    def of(self, model: str, ids: Sequence[int]) -> dict[int, bytes]:
        """The stored vectors of ``model`` for these articles (those that have one)."""
        out: dict[int, bytes] = {}
        sql = "SELECT article_id, vec FROM embeddings WHERE model = ? AND article_id IN ({ids})"
        out.update(
            (int(aid), bytes(blob)) for aid, blob in select_in(self._db.conn, sql, ids, before=[model])
        )
        return out

    def count(self, model: str) -> int:
        return int(
            self._db.conn.execute("SELECT count(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0]
        )

    def stats(self, model: str) -> tuple[int, int]:
        """(count, max article id) of the vectors stored for ``model``."""
        row = self._db.conn.execute(
            "SELECT count(*), coalesce(max(article_id), 0) FROM embeddings WHERE model = ?", (model,)
        ).fetchone()
        return int(row[0]), int(row[1])

    def load_after(
        self, model: str, after_id: int, *, limit: int
    ) -> tuple[list[int], list[bytes], list[int]]:
        """(ids, vectors, published) of ``model`` with article id > ``after_id``, in id order."""
        rows = self._db.conn.execute(
            "SELECT e.article_id, e.vec, a.published FROM embeddings e JOIN articles a ON a.id = e.article_id"
            " WHERE e.article_id > ? AND e.model = ? ORDER BY e.article_id LIMIT ?",
            (after_id, model, limit),
        ).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def save_passages(
        self,
        model: str,
        items: Iterable[tuple[int, Sequence[tuple[str, bytes]]]],
        *,
        pending: Mapping[int, int] | None = None,
    ) -> None:
        """Replace the (text, vector) passages of the given articles; they are no longer
        pending (see :meth:`save_documents`). With ``pending`` (the tokens read
        before the texts), an article marked again since, because another process stored a
        newer text, is left alone: its newer mark stays for the next second pass."""
        with self._db.transaction() as tx:
            for aid, passages in items:
                if pending is not None:
                    still = tx.execute(
                        "UPDATE embeddings SET passages_pending = 0"
                        " WHERE article_id = ? AND model = ? AND passages_pending = ?",
                        (aid, model, pending[aid]),
                    )
                    if still.rowcount == 0:
                        continue
                tx.execute("DELETE FROM passages WHERE article_id = ?", (aid,))
                tx.executemany(
                    "INSERT INTO passages(article_id, seq, model, text, vec) VALUES (?, ?, ?, ?, ?)",
                    [(aid, seq, model, text, blob) for seq, (text, blob) in enumerate(passages)],
                )
                tx.execute(
                    "UPDATE embeddings SET passages_pending = 0 WHERE article_id = ? AND model = ?",
                    (aid, model),
                )

    def passages(self, model: str, ids: Sequence[int]) -> dict[int, list[tuple[str, bytes]]]:
        """The stored (text, vector) passages of ``model`` per article id, in article order."""
        out: dict[int, list[tuple[str, bytes]]] = {}
        sql = (
            "SELECT article_id, text, vec FROM passages WHERE article_id IN ({ids}) AND model = ?"
            " ORDER BY article_id, seq"
        )
        for aid, text, vec in select_in(self._db.conn, sql, ids, after=[model]):
            out.setdefault(aid, []).append((text, vec))
        return out
