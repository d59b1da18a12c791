"""The project's exception hierarchy.

Two roots, because callers must treat them differently:

- :class:`EngfeedError`: the input or a setting is wrong (a bad URL, a broken angles file, an
  unknown id). Callers (the CLI, the fetch loop, the web handlers) catch it, show the one-line
  message and go on; the web answers 4xx.
- :class:`Unavailable`: something engfeed depends on is away for now (a PostgreSQL server
  restarting). Nothing is wrong with the request; it is worth retrying. It is deliberately
  *not* an ``EngfeedError``, so no "bad input" handler turns an outage into a 400 or a
  per-source failure: it travels up to the top, where the web answers 503 with Retry-After,
  the CLI exits 75 (``EX_TEMPFAIL``) and a job is retried.

Anything else is a bug and surfaces as one.
"""

from __future__ import annotations


class EngfeedError(Exception):
    """Base class of the errors engfeed raises deliberately: bad input, not bugs.

    The message is a single human-readable line, fit to show to the user as is.
    """


class ConfigError(EngfeedError):
    """A setting, file or path the user chose cannot be used (a broken angles file, a store
    path that cannot be opened, a store from a newer engfeed). The CLI exits with status 2."""


class StoreError(ConfigError):
    """The store cannot be opened or used as it is; nothing was written to it."""


class Unavailable(Exception):
    """A service engfeed depends on is away for now; retrying later may succeed.

    The message is a single human-readable line."""


class DatabaseUnavailable(Unavailable):
    """The database went away while in use (a PostgreSQL server restarting or unreachable,
    or no pooled connection free in time). Raised by the PostgreSQL backend only; a store that
    cannot be opened at all is a :class:`StoreError`."""


class QueryError(EngfeedError):
    """The full-text engine could not run a search expression (or gave up on it within its
    work budget). Search treats it as "no lexical matches"; the dense side still answers."""
