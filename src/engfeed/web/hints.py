"""Plain-language explanations of why a source fails, for the sources page and the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from engfeed.models import Source

_HTTP = re.compile(r"\bHTTP (\d{3})\b")

HINT_403 = (
    "The site blocks automated readers (HTTP 403), often through a bot shield such as Cloudflare. "
    "It may pass again later; if it keeps failing, look for another feed URL on the site."
)
HINT_401 = "The feed needs a login (HTTP 401); private feeds cannot be followed."
HINT_404 = "The feed moved or was removed; check the site for a new feed URL."
HINT_429 = (
    "Rate limited (HTTP 429): the site asked readers to slow down. "
    "Engineering Feed backs off and retries later on its own."
)
HINT_5XX = "The site's server failed (HTTP {status}); this is usually temporary and will be retried."
HINT_TIMEOUT = (
    "The site did not answer in time; it may be slow or down. It will be retried later with backoff."
)
HINT_CONNECT = (
    "Could not connect: the host name may not resolve (DNS) or the server refused the connection. "
    "Check the feed URL and this machine's network."
)
HINT_TLS = "The site's HTTPS certificate could not be verified; the site may be misconfigured."
HINT_NOT_FEED = (
    "The URL answered with something that is not a feed (often an HTML page). "
    "Check the site for its RSS or Atom link, or re-add the site's address so the feed is discovered."
)
HINT_TOO_LARGE = "The feed is larger than the size limit; it is skipped to protect the reader."
HINT_REDIRECTS = "The feed URL redirects too many times (a redirect loop); check it in a browser."
HINT_BAD_URL = "The feed URL is not valid; remove the source and add it again with a correct URL."
HINT_OTHER = "The last fetch failed; it will be retried later with backoff."


def failure_hint(source: Source) -> str | None:
    """A one-sentence explanation and next step for a failing source, else ``None``."""
    error = (source.error or "").strip()
    if not error:
        return None
    status = source.http_status
    found = _HTTP.search(error)
    if found and (status is None or status < 400):
        status = int(found.group(1))
    lowered = error.lower()
    if status is not None and status >= 400:
        if status == 403:
            return HINT_403
        if status == 401:
            return HINT_401
        if status in (404, 410):
            return HINT_404
        if status == 429:
            return HINT_429
        if status >= 500:
            return HINT_5XX.format(status=status)
    if "timed out" in lowered or "timeout" in lowered:
        return HINT_TIMEOUT
    if any(k in lowered for k in ("certificate", "ssl", "tls")):
        return HINT_TLS
    if any(
        k in lowered
        for k in (
            "connection failed",
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo",
            "name resolution",
            "dns",
            "connection refused",
            "network error",
            "unreachable",
        )
    ):
        return HINT_CONNECT
    if "redirect" in lowered:
        return HINT_REDIRECTS
    if any(k in lowered for k in ("too large", "larger than", "size limit", "exceeds")):
        return HINT_TOO_LARGE
    if "invalid url" in lowered or "not an http" in lowered:
        return HINT_BAD_URL
    if any(
        k in lowered for k in ("not a feed", "not xml", "html page", "parse", "no entries", "not well-formed")
    ):
        return HINT_NOT_FEED
    return HINT_OTHER


def health(source: Source) -> str:
    """``ok``, ``failing``, ``never fetched`` or ``pending`` (added, not yet due)."""
    if source.error:
        return "failing"
    if source.last_success is not None:
        return "ok"
    if source.last_attempt is None:
        return "never fetched"
    return "pending"


def due_now(source: Source, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return source.next_due is None or source.next_due <= now
