"""``robots.txt`` for article pages: may we fetch this URL? (RFC 9309)

Feeds are made to be fetched; article pages are not, so every page fetch asks the host's
``robots.txt`` first, for our user-agent token (``EngineeringFeed``) or ``*``. Rules are kept
per host (scheme + host + port) for :data:`TTL`, in the store, so a run of 200 pages on one
blog costs one ``robots.txt`` request, and the next run none.

What an answer means (RFC 9309 §2.3.1): a 2xx body is parsed (at most :data:`MAX_BYTES`);
4xx ("unavailable") allows everything; 5xx or a network failure ("unreachable") disallows
everything for now, and is asked again after :data:`RETRY_UNREACHABLE`.

How a body is read (RFC 9309 §2.2): the groups naming our product token (case-insensitive,
any ``/version`` ignored) apply, merged; else the ``*`` groups, merged; else nothing is
disallowed. Of the rules matching a URL's path and query, the longest wins and ``Allow`` wins
a tie; ``*`` matches any run of characters and a final ``$`` anchors the end; both sides are
compared percent-encoded alike. (The standard library's ``urllib.robotparser`` takes the first
matching rule and knows no wildcards, so ``Allow: /`` before ``Disallow: /private/`` would
allow everything: it is not used.) Matching never backtracks (one left-to-right scan of the
path per rule), so a hostile file of wildcards cannot make it slow.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, unquote, urlsplit

AGENT = "EngineeringFeed"
TTL = timedelta(hours=24)
RETRY_UNREACHABLE = timedelta(hours=1)
MAX_BYTES = 512 * 1024  # RFC 9309: crawlers must parse at least 500 KiB (a longer file: its start)
# The fetcher's words for a robots.txt not reached within its redirect limit.
_REDIRECTS_FAILED = re.compile(r"too many redirects|redirect loop")


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """One host's rules as fetched: ``body`` is the file's text (``allow_all``/``deny_all``
    stand for the 4xx and unreachable cases; ``error`` says why it was unreachable, when this
    run fetched it)."""

    origin: str
    fetched: datetime
    body: str = ""
    allow_all: bool = False
    deny_all: bool = False
    error: str = ""

    def allows(self, url: str) -> bool:
        if self.allow_all:
            return True
        if self.deny_all:
            return False
        return _allowed(_rules(self.body), _target(url))

    def fresh(self, now: datetime) -> bool:
        age = now - self.fetched
        return age < (RETRY_UNREACHABLE if self.deny_all else TTL)

    @classmethod
    def from_response(
        cls,
        origin: str,
        fetched: datetime,
        status: int | None,
        body: bytes | None,
        error: str | None = None,
    ) -> RobotsRules:
        if status is not None and 200 <= status < 300 and body is not None:
            return cls(origin, fetched, body=body[:MAX_BYTES].decode("utf-8", "replace"))
        if status is not None and 400 <= status < 500:
            return cls(origin, fetched, allow_all=True)
        if error and _REDIRECTS_FAILED.match(error):  # RFC 9309 2.3.1.2: then it is unavailable
            return cls(origin, fetched, allow_all=True)
        return cls(origin, fetched, deny_all=True, error=error or (f"HTTP {status}" if status else ""))


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (robots.txt is per origin), else None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default = 80 if parts.scheme == "http" else 443
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def robots_url(origin: str) -> str:
    return origin + "/robots.txt"


# -- RFC 9309 matching ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Rule:
    allow: bool
    parts: tuple[str, ...]  # the pattern split at "*", percent-encoded alike
    anchored: bool  # the pattern ended in "$"
    length: int  # octets of the pattern as written: the longest match wins


# Kept as they are when a path is re-encoded: RFC 3986 reserved and unreserved characters.
_SAFE = "/?#[]@!$&'()*+,;=:~"


def _encoded(text: str) -> str:
    """``text`` percent-encoded one way, whichever way it came (``%7E``, ``~``, ``é``)."""
    return quote(unquote(text), safe=_SAFE)


def _target(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "/"
    path = parts.path or "/"
    return _encoded(path + ("?" + parts.query if parts.query else ""))


def _rule(value: str, allow: bool) -> _Rule:
    anchored = value.endswith("$")
    pattern = _encoded(value[:-1] if anchored else value)
    return _Rule(allow, tuple(pattern.split("*")), anchored, len(value.encode("utf-8")))


@functools.lru_cache(maxsize=64)
def _rules(body: str) -> tuple[_Rule, ...]:
    """The rules that apply to :data:`AGENT` in a robots.txt body (RFC 9309 §2.2.1)."""
    ours: list[_Rule] = []
    anyones: list[_Rule] = []
    named = False
    agents: set[str] = set()
    rules: list[_Rule] = []
    in_rules = False

    def close() -> None:
        nonlocal named
        if AGENT.lower() in agents:
            named = True
            ours.extend(rules)
        if "*" in agents:
            anyones.extend(rules)

    for raw in body.lstrip("\ufeff").splitlines():
        key, sep, value = raw.split("#", 1)[0].partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:  # a user-agent line after rules starts the next group
                close()
                agents, rules, in_rules = set(), [], False
            agents.add(value.split("/", 1)[0].strip().lower())
        elif key in ("allow", "disallow") and agents:
            in_rules = True
            if value:  # an empty rule says nothing ("Disallow:" allows everything)
                rules.append(_rule(value, key == "allow"))
    close()
    return tuple(ours if named else anyones)


def _allowed(rules: tuple[_Rule, ...], path: str) -> bool:
    best, allow = -1, True
    for rule in rules:
        if (rule.length > best or (rule.length == best and rule.allow)) and _matches(rule, path):
            best, allow = rule.length, rule.allow
    return allow


def _matches(rule: _Rule, path: str) -> bool:
    """Does the pattern match ``path`` from its start? Each ``*`` takes the shortest run that
    lets the next literal part follow (leftmost ``find``), which is exact for patterns made of
    literals and ``*`` alone, in one left-to-right scan."""
    first, *rest = rule.parts
    if not path.startswith(first):
        return False
    if not rest:
        return not rule.anchored or path == first
    pos = len(first)
    middle, last = rest[:-1], rest[-1]
    for part in middle:
        found = path.find(part, pos)
        if found < 0:
            return False
        pos = found + len(part)
    if rule.anchored:
        return path.endswith(last) and len(path) - len(last) >= pos
    return path.find(last, pos) >= 0
