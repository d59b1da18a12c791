"""``robots.txt`` for article pages: may we fetch this URL? (RFC 9309)

Feeds are made to be fetched; article pages are not, so every page fetch asks the host's
``robots.txt`` first, for our user-agent token (``EngineeringFeed``) or ``*``. Rules are kept
per host (scheme + host + port) for :data:`TTL`, in the store, so a run of 200 pages on one
blog costs one ``robots.txt`` request, and the next run none.

What an answer means (RFC 9309 §2.3.1): a 2xx body is parsed (at most :data:`MAX_BYTES`);
4xx ("unavailable") allows everything; 5xx or a network failure ("unreachable") disallows
everything for now, and is asked again after :data:`RETRY_UNREACHABLE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

AGENT = "EngineeringFeed"
TTL = timedelta(hours=24)
RETRY_UNREACHABLE = timedelta(hours=1)
MAX_BYTES = 512 * 1024  # RFC 9309: crawlers must parse at least 500 KiB


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """One host's rules as fetched: ``body`` is the file's text (``allow_all``/``deny_all``
    stand for the 4xx and unreachable cases)."""

    origin: str
    fetched: datetime
    body: str = ""
    allow_all: bool = False
    deny_all: bool = False

    def allows(self, url: str) -> bool:
        if self.allow_all:
            return True
        if self.deny_all:
            return False
        parser = RobotFileParser()
        parser.parse(self.body.splitlines())
        return parser.can_fetch(AGENT, url)

    def fresh(self, now: datetime) -> bool:
        age = now - self.fetched
        return age < (RETRY_UNREACHABLE if self.deny_all else TTL)

    @classmethod
    def from_response(
        cls, origin: str, fetched: datetime, status: int | None, body: bytes | None
    ) -> RobotsRules:
        if status is not None and 200 <= status < 300 and body is not None:
            return cls(origin, fetched, body=body[:MAX_BYTES].decode("utf-8", "replace"))
        if status is not None and 400 <= status < 500:
            return cls(origin, fetched, allow_all=True)
        return cls(origin, fetched, deny_all=True)


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
