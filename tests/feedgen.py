"""Generated, real-looking feeds for tests (our own text, never a publisher's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

TOPICS = [
    ("Scaling our queue to a million messages per second", "We rebuilt the broker to cut p99 latency."),
    ("How we run active-active across regions", "Failover between regions now takes seconds, not hours."),
    ("Hiring for our new platform team", "We are growing the team and looking for engineers."),
    ("Making builds faster with remote caching", "Remote cache hits cut CI time in half."),
]


def rss(
    n: int,
    *,
    title: str = "Acme Engineering",
    site: str = "https://acme.example",
    start: datetime | None = None,
    prefix: str = "post",
) -> bytes:
    """An RSS 2.0 feed of ``n`` WordPress-style items, newest first, one day apart."""
    start = start or datetime(2026, 10, 1, 12, tzinfo=UTC)
    items = []
    for i in range(n):
        head, body = TOPICS[i % len(TOPICS)]
        when = format_datetime(start - timedelta(days=i))
        link = f"{site}/{prefix}-{i}?utm_source=rss&utm_medium=rss"
        items.append(
            f"<item><title>{escape(head)} (part {i})</title><link>{escape(link)}</link>"
            f"<guid isPermaLink='false'>{prefix}-{i}</guid><pubDate>{when}</pubDate>"
            f"<description>{escape(body)} The post {escape(head)} appeared first on {escape(title)}."
            "</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{site}/</link><description>d</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()
