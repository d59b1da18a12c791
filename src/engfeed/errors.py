"""The project's exception hierarchy.

Every error the package raises on purpose derives from :class:`EngfeedError`, so callers
(the CLI, the fetch loop) can catch "our" failures, print the one-line message, and let
programming errors surface as tracebacks.
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


class DatabaseUnavailable(StoreError):
    """The database went away while in use (a PostgreSQL server restarting or unreachable).
    An outage, not bad input: the web answers 503 with Retry-After, never 400."""


class QueryError(EngfeedError):
    """The full-text engine could not run a search expression (or gave up on it within its
    work budget). Search treats it as "no lexical matches"; the dense side still answers."""
