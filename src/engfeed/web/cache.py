"""Small caches keyed by the store's change token.

The sidebar counts (``GROUP BY`` over every article), the total of a filtered listing and
whole rendered pages cost milliseconds at 100k articles, yet only change when the store
does. Each cache remembers the token its entries were computed under; a new token (any
commit, from any connection) drops them all at once. Entries are bounded (LRU), so odd
query strings cannot grow memory, and may carry a time-to-live for results that also
depend on the clock (search ranking has a recency prior).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

_MISSING = object()


class TokenCache:
    """An LRU map whose whole content is valid for one store token at a time."""

    def __init__(self, token: Callable[[], Hashable], *, max_entries: int = 512) -> None:
        self._token_fn = token
        self._token: Hashable = None
        self._entries: OrderedDict[Hashable, tuple[object, float]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def check(self, token: Hashable = _MISSING) -> Hashable:
        """Read the store token now (or take the one given); a change empties the cache."""
        if token is _MISSING:
            token = self._token_fn()
        with self._lock:
            if token != self._token:
                self._entries.clear()
                self._token = token
        return token

    def lookup(self, key: Hashable) -> object:
        """The live cached value for ``key``, or ``None``."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            value, expires = found
            if expires and expires < time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def store(
        self, key: Hashable, value: object, *, ttl: float | None = None, token: Hashable = _MISSING
    ) -> None:
        """Remember ``value`` unless the token moved since ``token`` was read."""
        expires = time.monotonic() + ttl if ttl else 0.0
        with self._lock:
            if token is not _MISSING and token != self._token:
                return
            self._entries[key] = (value, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def get(self, key: Hashable, compute: Callable[[], T], *, ttl: float | None = None) -> T:
        """The cached value for ``key`` under the current token (call :meth:`check` first)."""
        found = self.lookup(key)
        if found is not None:
            return found  # type: ignore[return-value]
        with self._lock:
            token = self._token
        value = compute()
        self.misses += 1
        self.store(key, value, ttl=ttl, token=token)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._token = None

    def __len__(self) -> int:
        return len(self._entries)


class SizedLRU:
    """An LRU memo of ``fn`` bounded by the memory its keys and values take, not only by
    their number: one cached 100 MB value must not be able to stay for good.

    Values larger than an eighth of ``max_bytes`` are computed every time, never kept.
    Sizes are ``sys.getsizeof`` of key and value (what the strings really occupy).
    """

    def __init__(self, fn: Callable[[str], str], *, max_bytes: int, max_entries: int = 4096) -> None:
        self._fn = fn
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def __call__(self, key: str) -> str:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found[0]
        value = self._fn(key)
        size = sys.getsizeof(key) + sys.getsizeof(value)
        if size > self._max_bytes // 8:
            return value
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (value, size)
                self.bytes += size
            while self.bytes > self._max_bytes or len(self._entries) > self._max_entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0
