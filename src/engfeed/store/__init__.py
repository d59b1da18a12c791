"""Storage, in domain words, on SQLite or PostgreSQL: the only package that speaks SQL.

``Store(location)`` opens a store: a file path gives :class:`~engfeed.store.sqlite.SQLiteStore`,
a ``postgresql://`` URL :class:`~engfeed.store.postgres.PostgresStore`. Both share the SQL in
:mod:`engfeed.store.base` and differ where the engines do (connections, migrations, full text,
change detection). The domain parts (``vectors``, ``angles``, ``reading``, ``pages``,
``summaries``, ``mutes``, ``digests``, ``feedback``) are modules of their own, reached as
attributes of the store (``store.reading.set_saved(...)``).
"""

from __future__ import annotations

from engfeed.models import SchemaStatus
from engfeed.store.base import LOCAL_USER, FetchOutcome, Store, UpsertResult, is_database_url, open_store
from engfeed.store.postgres import PostgresStore
from engfeed.store.sqlite import SQLiteStore

__all__ = [
    "LOCAL_USER",
    "FetchOutcome",
    "PostgresStore",
    "SQLiteStore",
    "SchemaStatus",
    "Store",
    "UpsertResult",
    "is_database_url",
    "open_store",
]
