"""Rows to domain types and back: the column lists, time stamps, and decoding a row.

Shared by the store and its parts; no SQL runs here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from engfeed.models import AngleMatch, Article, Source
from engfeed.store.sql import Cursor

__all__ = [
    "ARTICLE_COLUMNS",
    "FULL_COLUMNS",
    "article_row",
    "decorate",
    "dicts",
    "from_ts",
    "opt_int",
    "source_row",
    "to_ts",
]


def to_ts(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def from_ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


ARTICLE_COLUMNS = (
    "a.id, a.uid, a.source_name, a.url, a.guid, a.title, a.author, a.tags, a.published, a.updated,"
    " a.date_estimated, a.first_seen, a.excerpt, a.text_source"
)
FULL_COLUMNS = (
    ARTICLE_COLUMNS + ", a.summary_html, a.content_html, a.body,"
    " (SELECT p.html FROM article_pages p WHERE p.article_id = a.id AND a.text_source = 'page') AS page_html"
)


def dicts(cursor: Cursor) -> list[dict[str, object]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def source_row(row: dict[str, object]) -> Source:
    return Source(
        id=opt_int(row["id"]),
        name=str(row["name"]),
        url=str(row["url"]),
        site_url=str(row["site_url"] or ""),
        etag=None if row["etag"] is None else str(row["etag"]),
        last_modified=None if row["last_modified"] is None else str(row["last_modified"]),
        last_attempt=from_ts(opt_int(row["last_attempt"])),
        last_success=from_ts(opt_int(row["last_success"])),
        http_status=opt_int(row["http_status"]),
        error=None if row["error"] is None else str(row["error"]),
        failures=int(str(row["failures"])),
        next_due=from_ts(opt_int(row["next_due"])),
        article_count=int(str(row.get("n") or 0)),
    )


def article_row(row: dict[str, object]) -> Article:
    published = from_ts(opt_int(row["published"]))
    assert published is not None
    return Article(
        id=opt_int(row["id"]),
        uid=str(row["uid"]),
        source=str(row["source_name"]),
        url=str(row["url"]),
        guid=str(row["guid"]),
        title=str(row["title"]),
        author=str(row["author"]),
        tags=tuple(json.loads(str(row["tags"]))),
        published=published,
        updated=from_ts(opt_int(row["updated"])),
        date_estimated=bool(row["date_estimated"]),
        first_seen=from_ts(opt_int(row["first_seen"])),
        excerpt=str(row["excerpt"]),
        summary_html=str(row.get("summary_html") or ""),
        content_html=str(row.get("content_html") or ""),
        text=str(row.get("body") or ""),
        text_source="page" if row.get("text_source") == "page" else "feed",
        page_html=str(row.get("page_html") or ""),
    )


def decorate(article: Article, angles: tuple[AngleMatch, ...], state: tuple[object, ...] | None) -> Article:
    """The article with its angles and the reader's state attached."""
    if state is None:
        return replace(article, angles=angles)
    saved, read, note, saved_at, read_at = state
    return replace(
        article,
        angles=angles,
        saved=bool(saved),
        read=bool(read),
        note=None if note is None else str(note),
        saved_at=from_ts(opt_int(saved_at)) if saved else None,
        read_at=from_ts(opt_int(read_at)) if read else None,
    )
