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
