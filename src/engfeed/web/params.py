"""Query-string parsing shared by the page, the JSON API and the output feeds.

Every parameter is validated here, once: a bad value raises :class:`BadParam` (a 400 for
the API, an error notice on the page), and no string, however odd (NUL bytes, megabytes,
lone surrogates, 30-digit numbers), can reach the store in a shape that makes it fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from engfeed.models import ArticleFilter
from engfeed.text import clean_text

MAX_QUERY_CHARS = 300
MAX_NAME_CHARS = 120
MAX_SOURCES = 20
MAX_LIMIT = 200
SHOW_VALUES = frozenset({"", "unread", "saved"})
# Keyset cursor as the facade makes it: "<published unix seconds>.<rowid>", both int64-safe.
_CURSOR = re.compile(r"-?\d{1,17}\.\d{1,18}")
_MIN_DATE = date(1970, 1, 1)
_MAX_DATE = date(2999, 12, 31)


class BadParam(ValueError):
    """A query parameter the user got wrong; ``str()`` is the message to show."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def parse_date(name: str, raw: str) -> datetime | None:
    """``YYYY-MM-DD`` or ISO 8601 (naive means UTC); empty means no bound."""
    text = clean_text(raw, 64)
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            value = datetime.combine(day, time(), tzinfo=UTC)
        else:
            value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadParam(name, f"not a date: {text[:40]!r} (use YYYY-MM-DD)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadParam(name, "date out of range") from None
    if not _MIN_DATE <= value.date() <= _MAX_DATE:
        raise BadParam(name, f"date out of range (between {_MIN_DATE} and {_MAX_DATE})")
    return value


def parse_limit(raw: str | None, *, default: int, maximum: int = MAX_LIMIT) -> int:
    if raw is None or not raw.strip():
        return default
    text = raw.strip()
    if not re.fullmatch(r"\+?\d+", text):
        raise BadParam("limit", f"not a whole number: {clean_text(text, 20)!r}")
    # Compare digit strings first: int() of a megabyte of digits is slow, and pointless.
    if len(text.lstrip("+0")) > 9 or not 1 <= int(text) <= maximum:
        raise BadParam("limit", f"limit must be between 1 and {maximum}")
    return int(text)


def parse_flag(name: str, raw: str | None) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (empty or absent: false)."""
    text = (raw or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise BadParam(name, "must be 1 or 0")


def parse_cursor(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    if not _CURSOR.fullmatch(text):
        raise BadParam("cursor", "not a cursor from a previous page (use next_cursor as given)")
    return text


@dataclass(frozen=True, slots=True)
class View:
    """One view of the feed: a concept query and/or filters, plus the page position."""

    q: str = ""
    sources: tuple[str, ...] = ()
    angle: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = None
    limit: int = 30
    show: str = ""  # "", "unread" or "saved"
    include_muted: bool = False  # also what the reader's mute rules hide (marked on the card)

    @classmethod
    def from_query(cls, params: QueryParams, *, default_limit: int = 30, max_limit: int = MAX_LIMIT) -> View:
        sources: list[str] = []
        seen: set[str] = set()
        for raw in params.getlist("source"):
            for part in raw.split(","):
                name = clean_text(part, MAX_NAME_CHARS)
                if name and name.lower() not in seen:
                    if len(sources) == MAX_SOURCES:  # stop at once: a long list costs no more
                        raise BadParam("source", f"at most {MAX_SOURCES} sources at once")
                    seen.add(name.lower())
                    sources.append(name)
        angle = clean_text(params.get("angle") or "", MAX_NAME_CHARS) or None
        since = parse_date("since", params.get("since") or "")
        until = parse_date("until", params.get("until") or "")
        if since and until and since >= until:
            raise BadParam("until", "must be later than since")
        show = clean_text(params.get("show") or "", 20).lower()
        if show not in SHOW_VALUES:
            raise BadParam("show", "must be unread or saved")
        return cls(
            include_muted=parse_flag("include_muted", params.get("include_muted")),
            show=show,
            q=clean_text(params.get("q") or "", MAX_QUERY_CHARS),
            sources=tuple(sources),
            angle=angle,
            since=since,
            until=until,
            cursor=parse_cursor(params.get("cursor")),
            limit=parse_limit(params.get("limit"), default=default_limit, maximum=max_limit),
        )

    @property
    def filter(self) -> ArticleFilter:
        return ArticleFilter(
            sources=self.sources,
            angle=self.angle,
            since=self.since,
            until=self.until,
            state=self.show or None,
            include_muted=self.include_muted,
        )

    @property
    def filtered(self) -> bool:
        return bool(self.sources or self.angle or self.since or self.until or self.show)

    def pairs(self, *, page: bool = False) -> list[tuple[str, str]]:
        """The query-string pairs that reproduce this view (``page``: keep cursor and limit)."""
        out: list[tuple[str, str]] = []
        if self.q:
            out.append(("q", self.q))
        out.extend(("source", s) for s in self.sources)
        if self.angle:
            out.append(("angle", self.angle))
        if self.since:
            out.append(("since", date_param(self.since)))
        if self.until:
            out.append(("until", date_param(self.until)))
        if self.show:
            out.append(("show", self.show))
        if self.include_muted:
            out.append(("include_muted", "1"))
        if page and self.cursor:
            out.append(("cursor", self.cursor))
        return out

    def url(self, path: str = "/", *, page: bool = False, extra: Iterable[tuple[str, str]] = ()) -> str:
        query = urlencode([*self.pairs(page=page), *extra])
        return f"{path}?{query}" if query else path

    def toggle_source(self, name: str) -> View:
        lowered = name.lower()
        if any(s.lower() == lowered for s in self.sources):
            return replace(self, sources=tuple(s for s in self.sources if s.lower() != lowered), cursor=None)
        return replace(self, sources=(*self.sources, name), cursor=None)

    def has_source(self, name: str) -> bool:
        lowered = name.lower()
        return any(s.lower() == lowered for s in self.sources)


def date_param(value: datetime) -> str:
    """A date bound as it goes back into a URL: the bare day when it is midnight UTC."""
    value = value.astimezone(UTC)
    if value.time() == time():
        return value.date().isoformat()
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def local_path(target: str) -> str | None:
    """``target`` when it is a path on this site (never another host: no open redirect)."""
    target = target.strip()
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
    ):
        return None
    return target[:2000]
