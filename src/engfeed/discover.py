"""Finding the feed behind a URL a person typed: the feed itself, or a blog page linking to it."""

from __future__ import annotations

import contextlib
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import anyio
import httpcore

from engfeed.errors import EngfeedError
from engfeed.fetch import DEFAULT_CONFIG, FetchConfig, fetch_one, make_client
from engfeed.models import Source
from engfeed.netpolicy import AddressRefused

# Media types of <link rel="alternate"> that announce a feed, best first when a page has several:
# "application/json" is last because WordPress also uses it for its REST API links.
FEED_LINK_TYPES = (
    "application/atom+xml",
    "application/rss+xml",
    "application/feed+json",
    "application/rdf+xml",
    "application/json",
)
# Content-Types that say "feed" without looking at the body.
_FEED_MEDIA_TYPES = frozenset({"application/atom+xml", "application/rss+xml", "application/feed+json"})
_HTML_MEDIA_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFF_BYTES = 8192
_BOM_AND_SPACE = b"\xef\xbb\xbf \t\r\n\x0c"


class _LinkParser(HTMLParser):
    """Collects <base href> and feed <link>s; the stdlib parser tolerates any garbage."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str]] = []  # (href, media type)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("link", "base"):
            return
        values: dict[str, str] = {}
        for name, value in attrs:
            values.setdefault(name, value or "")  # the first of a repeated attribute wins
        href = _clean_href(values.get("href", ""))
        if not href:
            return
        if tag == "base":
            if self.base is None:  # only the first <base href> counts
                self.base = href
            return
        rels = values.get("rel", "").lower().split()
        media_type = values.get("type", "").split(";")[0].strip().lower()
        if "alternate" in rels and media_type in FEED_LINK_TYPES:
            self.links.append((href, media_type))


def _clean_href(href: str) -> str:
    # As browsers do: trim spaces, drop tabs and newlines inside.
    return "".join(ch for ch in href.strip() if ch not in "\t\n\r")


def _feed_links(html: bytes | str, base_url: str) -> list[tuple[str, str]]:
    """(absolute URL, media type) of every feed link, in document order, without duplicates."""
    text = html.decode("utf-8", "replace") if isinstance(html, bytes | bytearray) else html
    parser = _LinkParser()
    with contextlib.suppress(Exception):  # keep whatever was found before the parser gave up
        parser.feed(text)
        parser.close()
    base = base_url
    if parser.base is not None:
        with contextlib.suppress(ValueError):
            base = urljoin(base_url, parser.base)
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for href, media_type in parser.links:
        url = _absolute(href, base)
        if url is not None and url not in seen:
            seen.add(url)
            found.append((url, media_type))
    return found


def _absolute(href: str, base: str) -> str | None:
    if href.lower().startswith("feed:"):  # feed://host/path and feed:https://host/path
        rest = href[5:]
        href = "http:" + rest if rest.startswith("//") else rest
    try:
        url = urljoin(base, href)
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts._replace(fragment="").geturl()


def find_feed_links(html: bytes | str, base_url: str) -> list[str]:
    """Feed URLs a page announces with ``<link rel="alternate" type="...">``.

    Types: RSS, Atom, JSON Feed (``application/feed+json`` or ``application/json``) and RDF.
    Hrefs are resolved against the page's first ``<base href>`` (itself resolved against
    ``base_url``) or ``base_url``; only http(s) URLs are kept, in document order, without
    duplicates. Never raises, whatever the input.
    """
    return [url for url, _ in _feed_links(html, base_url)]


def _head(body: bytes, size: int = _SNIFF_BYTES) -> bytes:
    return body[:size].lstrip(_BOM_AND_SPACE).lower()


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _sniff_feed(head: bytes) -> bool:
    """Does this (lower-cased) start of a document look like RSS, Atom, RDF or JSON Feed?"""
    if head.startswith(b"{"):
        return b"jsonfeed.org/version" in head
    html_at = head.find(b"<html")
    for marker in (b"<rss", b"<feed", b"<atom:feed", b"<rdf:rdf"):
        at = head.find(marker)
        if at != -1 and (html_at == -1 or at < html_at):
            return True
    return False


def _sniff_html(head: bytes) -> bool:
    return head.startswith(b"<!doctype html") or b"<html" in head[:1024] or head.startswith(b"<head")


def looks_like_html(body: bytes, content_type: str) -> bool:
    """Is this an HTML page (rather than a feed or anything else)?

    The body wins over the header: a feed served as ``text/html`` is not HTML, and a page
    served without a Content-Type that starts like HTML is.
    """
    head = _head(body)
    if _sniff_feed(head):
        return False
    if _media_type(content_type) in _HTML_MEDIA_TYPES:
        return True
    return _sniff_html(head)


def looks_like_feed(body: bytes, content_type: str) -> bool:
    """Is this a feed document (RSS, Atom, RDF, JSON Feed)?"""
    head = _head(body)
    if _sniff_feed(head):
        return True
    if _sniff_html(head):
        return False
    return bool(head) and _media_type(content_type) in _FEED_MEDIA_TYPES


def _best(links: list[tuple[str, str]]) -> str:
    """The first link of a feed type, else the first generic ``application/json`` one."""
    for url, media_type in links:
        if media_type != "application/json":
            return url
    return links[0][0]


def _normalise(url: str) -> str:
    text = url.strip()
    if not text:
        raise EngfeedError("no URL given")
    if "://" not in text:
        text = "https://" + text  # "example.com/blog" means the https site
    return text


async def discover(url: str, config: FetchConfig = DEFAULT_CONFIG) -> str:
    """The feed URL for ``url``: the URL itself if it is a feed, else the page's feed link.

    A URL without a scheme is taken as https. A feed reached only through permanent
    redirects is returned at its new address. Raises :class:`EngfeedError` when the fetch
    fails or no feed is found.
    """
    target = _normalise(url)
    async with make_client(config) as client:
        result = await fetch_one(client, Source(name=target, url=target), config)
    if result.error is not None:
        raise EngfeedError(f"could not fetch {target}: {result.error}")
    body = result.body or b""
    content_type = result.headers.get("content-type", "")
    if looks_like_feed(body, content_type):
        return result.permanent_url or target
    if looks_like_html(body, content_type):
        links = _feed_links(body, result.final_url)
        if not links:
            raise EngfeedError(f"no feed found on {target}: the page links to none; give the feed URL itself")
        found = _best(links)
        await _check_address(found, config)
        return found
    shown = _media_type(content_type) or "no content type"
    raise EngfeedError(f"{target} is neither a feed nor an HTML page ({shown})")


async def _check_address(url: str, config: FetchConfig) -> None:
    """Refuse a discovered feed link whose host the address policy refuses (a page may
    announce a feed on the machine's own services or a metadata endpoint)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise EngfeedError(f"the page's feed link is not a valid URL: {url}") from exc
    try:
        with anyio.fail_after(config.connect_timeout):
            await config.policy.resolve(parts.hostname or "", port)
    except AddressRefused as exc:
        raise EngfeedError(exc.describe(url)) from exc
    except (httpcore.ConnectError, TimeoutError):
        pass  # not resolvable now: the first refresh reports it (and checks again)
