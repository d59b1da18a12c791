"""Feed documents (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, JSON Feed 1.0/1.1) to :class:`ParsedFeed`.

XML goes through feedparser, which copes with the ill-formed and mis-encoded documents found
in the wild; its own HTML sanitizer is switched off because ``nh3`` (see :mod:`engfeed.text`)
does that job several times faster. JSON Feed is read with the ``json`` module.

Every entry becomes an :class:`Article` with a canonical URL, a stable uid, UTC dates,
sanitized HTML, plain text for search and a card excerpt. :func:`parse_feed` never raises
anything but :class:`ParseError`, whatever bytes it is given, and never expands entity
declarations that could blow up ("billion laughs") or read local files (XXE).
"""

from __future__ import annotations

import calendar
import hashlib
import html as htmllib
import io
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import feedparser
import feedparser.mixin
from feedparser.datetimes import _parse_date as _feedparser_parse_date

from engfeed.errors import EngfeedError
from engfeed.models import Article, ParsedFeed
from engfeed.text import (
    LINK_REL,
    cap_html,
    clip,
    excerpt_of,
    html_to_text,
    make_excerpt,
    plain_title,
    repair_mojibake,
    sanitize_html,
    strip_boilerplate,
)
from engfeed.urls import article_uid, canonical_url, dedup_key

__all__ = ["ParseError", "backfill_dates", "parse_feed"]

#: Dates after ``now + FUTURE_SLACK`` are treated as bogus (clock skew gets a day).
FUTURE_SLACK: Final = timedelta(days=1)
#: Dates before this are treated as bogus too (epoch-zero defaults, year 0001): no web feed
#: predates the web.
EARLIEST_DATE: Final = datetime(1991, 1, 1, tzinfo=UTC)
#: Where a backfilled undated entry goes when its feed has no dated entry at all: below every
#: real date (shown as "date unknown").
UNDATED: Final = EARLIEST_DATE - timedelta(days=1)
EXCERPT_LIMIT: Final = 300
#: Caps on what one entry may store, applied at parse time with a visible "…" (bodies get
#: a closing note instead): a hostile feed must not be able to fill the store, the page
#: or the memory of every process that shows it.
MAX_TITLE: Final = 500  # characters
MAX_AUTHOR: Final = 200  # characters
MAX_TAGS: Final = 50
MAX_TAG: Final = 60  # characters
MAX_BODY_BYTES: Final = 512 * 1024  # sanitised HTML, as UTF-8
MAX_GUID: Final = 1000  # characters
MAX_URL: Final = 8192  # characters; longer links are ignored
#: Entries kept per document (the largest real feed in the shared corpus has 895); past it,
#: the XML is cut after this many entries before parsing, so a 10 MB feed of 300,000 tiny
#: items costs what 5,000 do (feedparser alone would take 40 s and 375 MB on it).
MAX_ENTRIES: Final = 5000
# Raw input is cut to a multiple of each cap before any cleaning, so no step works on
# megabytes that could never be stored.
_RAW_FACTOR: Final = 8
TRUNCATED_NOTE: Final = (
    "This article was truncated here: it is longer than {size}. Read the original for the rest."
)
_AUTHOR_SCAN: Final = MAX_AUTHOR * _RAW_FACTOR
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_WARNING_LIMIT: Final = 200


def _bound_author_scan() -> None:
    """Make feedparser's author/e-mail split linear in practice.

    ``_FeedParserMixin._sync_author_detail`` looks for an e-mail address in a plain author
    string with ``re.search(r"([a-zA-Z0-9_.+-]+)@...")``, which is quadratic in the string's
    length: a feed with one 100,000-letter ``<author>`` (or ``<dc:creator>``,
    ``<managingEditor>``) kept a refresh busy for hours. The author is cut to the length we
    could ever store (times the raw factor) before that search; a real author line is far
    shorter. Applied once, at import; feedparser keeps working the same otherwise.
    """
    mixin = feedparser.mixin._FeedParserMixin
    original = mixin._sync_author_detail
    if getattr(original, "_engfeed_bounded", False):
        return

    def sync_author_detail(self: Any, key: str = "author") -> Any:
        context = self._get_context()
        value = context.get(key)
        if isinstance(value, str) and len(value) > _AUTHOR_SCAN:
            context[key] = value[:_AUTHOR_SCAN]
        return original(self, key)

    sync_author_detail._engfeed_bounded = True  # type: ignore[attr-defined]
    mixin._sync_author_detail = sync_author_detail


class ParseError(EngfeedError, ValueError):
    """The document is not a feed at all (HTML page, empty body, binary junk, other JSON)."""


_bound_author_scan()


@dataclass(slots=True)
class _Entry:
    """One entry, format-independent, before cleaning."""

    links: list[str]
    title: str = ""
    title_is_html: bool = False
    author: str = ""
    tags: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    summary: str = ""  # HTML
    content: str = ""  # HTML
    guid: str = ""
    base: str = ""  # xml:base in effect for the body, when the document set one


def parse_feed(
    data: bytes,
    *,
    url: str = "",
    headers: Mapping[str, str] | None = None,
    source: str = "",
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse one fetched document.

    ``url`` is where it was fetched from (the base for relative links), ``headers`` the HTTP
    response headers (their ``Content-Type`` charset matters for decoding), ``source`` the
    name stored on every article, ``now`` the first-seen time (default: the current time)
    that also stands in for missing or implausible dates.

    Raises :class:`ParseError` when the document yields no feed at all. A document that is
    ill-formed but still yields entries comes back with ``warning`` set.
    """
    now = _as_utc(now) if now is not None else datetime.now(UTC)
    lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    first = _first_significant_byte(data)
    if first is None:
        raise ParseError("empty document")
    if first == b"{" or (first != b"<" and "json" in lowered.get("content-type", "").lower()):
        return _parse_json_feed(data, url=url, source=source, now=now)
    return _parse_xml_feed(data, url=url, headers=lowered, source=source, now=now)


def backfill_dates(articles: Sequence[Article]) -> list[Article]:
    """Undated entries of a *backfill* (a source's first fetch, a local import), re-dated.

    The parser dates an undated entry by when it was first seen, which is right for an entry
    that appears on a later refresh: it really is new. In a backfill it is not: it is as old
    as the archive it came with, and "now" would float it above everything. So each undated
    entry is placed just below the oldest dated entry of the same document (keeping the
    document's order), or below every real date (:data:`UNDATED`) when the document has
    none. ``date_estimated`` stays true: the page still says "approx.".
    """
    dated = [a.published for a in articles if not a.date_estimated]
    anchor = min(dated) if dated else UNDATED
    out: list[Article] = []
    step = 0
    for article in articles:
        if article.date_estimated:
            step += 1
            article = replace(article, published=anchor - timedelta(seconds=step))
        out.append(article)
    return out


# --------------------------------------------------------------------------- XML feeds


def _parse_xml_feed(
    data: bytes, *, url: str, headers: dict[str, str], source: str, now: datetime
) -> ParsedFeed:
    data, dropped = _limit_entries(data)
    try:
        result = feedparser.parse(
            io.BytesIO(_defuse_entities(data)),  # a stream: never let feedparser open a path or URL
            response_headers=_feedparser_headers(headers),
            # Both off: nh3 sanitizes, and resolves relative URLs in bodies (natively, against
            # the xml:base feedparser reports), several times faster than feedparser does.
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser is a third-party boundary: no crash may escape
        raise ParseError(f"cannot parse document: {type(exc).__name__}: {_one_line(str(exc))}") from exc

    entries = result.get("entries") or []
    version = result.get("version") or ""
    if not entries and not version:
        raise ParseError(_not_a_feed_reason(data, result))

    location = headers.get("content-location", "")
    doc_url = canonical_url(location, url or None) if location else url
    feed = result.get("feed") or {}
    title = clip(plain_title(_str(dict.get(feed, "title"))[: MAX_TITLE * _RAW_FACTOR]), MAX_TITLE)
    link = canonical_url(_str(dict.get(feed, "link")), doc_url or None)
    if not link.startswith(("http://", "https://")):
        link = canonical_url(doc_url) if doc_url.startswith(("http://", "https://")) else ""
    base = link or doc_url  # relative entry links resolve against the site, else the feed URL
    warning = None
    if dropped:
        warning = f"more than {MAX_ENTRIES:,} entries: only the first {MAX_ENTRIES:,} were read"
    elif result.get("bozo"):
        problem = result.get("bozo_exception")
        warning = _one_line(
            f"{type(problem).__name__}: {problem}" if problem is not None else "ill-formed document"
        )
    articles = _build_articles(
        (_xml_entry(e) for e in entries if isinstance(e, dict)), base=base, source=source, now=now
    )
    return ParsedFeed(title=title, link=link, articles=articles, format=version, warning=warning)


_ENTRY_END: Final = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>")


def _limit_entries(data: bytes) -> tuple[bytes, bool]:
    """``data`` cut after the :data:`MAX_ENTRIES`-th entry's end tag, and whether it was cut.

    The cut document is ill-formed; feedparser's loose parser reads it up to the cut, which
    is what we want. Counting end tags costs a few ms per MB, and only runs on documents
    large enough to hold that many entries.
    """
    if len(data) < MAX_ENTRIES * 15:  # "<item></item>" is 13 bytes
        return data, False
    for count, match in enumerate(_ENTRY_END.finditer(data), 1):
        if count == MAX_ENTRIES:
            rest = data[match.end() :]
            return (data[: match.end()], True) if _ENTRY_END.search(rest) else (data, False)
    return data, False


def _feedparser_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The response headers feedparser should see.

    The media type is always given as ``application/xml``, keeping only the charset: that is
    RFC 7303's rule (a charset parameter wins, else the XML declaration, else UTF-8), where
    feedparser follows the obsolete RFC 3023 and decodes ``text/xml`` without a charset as
    US-ASCII, and flags every feed served as ``text/html`` or without a Content-Type.

    No Content-Location: given one, feedparser resolves every link against it with
    ``urljoin`` (a third of its parse time on link-heavy feeds); :func:`canonical_url`
    resolves the few relative ones later instead.
    """
    charset = _CHARSET.search(headers.get("content-type", ""))
    return {"content-type": "application/xml" + (f"; charset={charset.group(1)}" if charset else "")}


_CHARSET: Final = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)


def _xml_entry(entry: dict[str, Any]) -> _Entry:
    get = dict.get  # bypass FeedParserDict's deprecated key fallbacks
    links = []
    for link in get(entry, "links") or []:
        if isinstance(link, dict) and link.get("href") and link.get("rel", "alternate") == "alternate":
            links.append(_str(link.get("href")))
    if get(entry, "link"):
        links.append(_str(get(entry, "link")))

    title_detail = get(entry, "title_detail") or {}
    summary_detail = get(entry, "summary_detail") or {}
    content = raw_content = ""
    base = _str(summary_detail.get("base")) if isinstance(summary_detail, dict) else ""
    for item in get(entry, "content") or []:
        if isinstance(item, dict) and item.get("value"):
            raw_content = _str(item.get("value"))
            content = _as_html(raw_content, _str(item.get("type")))
            base = _str(item.get("base")) or base
            if "html" in _str(item.get("type")):
                break  # prefer an HTML body over a plain-text one
    summary = _str(get(entry, "summary"))
    if not summary_detail and summary == raw_content:
        summary = content  # feedparser copied the content into the summary, type and all
    else:
        summary = _as_html(
            summary, _str(summary_detail.get("type") if isinstance(summary_detail, dict) else "")
        )

    tags = [
        _str(tag.get("term") or tag.get("label")) for tag in get(entry, "tags") or [] if isinstance(tag, dict)
    ]
    detail = get(entry, "author_detail")
    author = _str(detail.get("name")) if isinstance(detail, dict) else ""
    author = author or _str(get(entry, "author"))

    return _Entry(
        links=links,
        title=_str(get(entry, "title")),
        title_is_html="html" in _str(title_detail.get("type") if isinstance(title_detail, dict) else ""),
        author=author,
        tags=tuple(tags),
        published=_from_struct(get(entry, "published_parsed")) or _from_struct(get(entry, "created_parsed")),
        updated=_from_struct(get(entry, "updated_parsed")),
        summary=summary,
        content=content,
        guid=_str(get(entry, "id")),
        base=base,
    )


def _not_a_feed_reason(data: bytes, result: Any) -> str:
    head = data[:2048].lower()
    if b"<html" in head or b"<!doctype html" in head:
        return "not a feed: the document is an HTML page"
    problem = result.get("bozo_exception")
    if problem is not None and not isinstance(problem, feedparser.CharacterEncodingOverride):
        return f"not a feed: {_one_line(f'{type(problem).__name__}: {problem}')}"
    return "not a feed: no RSS, Atom or JSON Feed content found"


# Prolog tokens of an XML document, for finding the DOCTYPE's internal subset.
_PROLOG_SKIP: Final = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_DOCTYPE_START: Final = re.compile(rb"<!DOCTYPE\b", re.IGNORECASE)
_DOCTYPE_TOKEN: Final = re.compile(rb"\"[^\"]*\"|'[^']*'|<!--.*?-->|[\[\]>]", re.DOTALL)
_ENTITY_DECL: Final = re.compile(rb"<!ENTITY(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
# A general entity whose value is plain text or one character reference: cannot expand
# recursively, cannot point outside the document.
_SAFE_ENTITY: Final = re.compile(rb"<!ENTITY\s+(\w+)\s+(?:\"(&#\w+;|[^&%\"<]*)\"|'(&#\w+;|[^&%'<]*)')\s*>")
_ENTITY_START: Final = re.compile(rb"<!ENTITY", re.IGNORECASE)
_FIRST_ELEMENT: Final = re.compile(rb"<\w")  # where feedparser's "head" ends
_ENTITY_REF: Final = re.compile(rb"&([A-Za-z_:][-.\w:]*)")
_LOOSE_NAME: Final = re.compile(rb"[A-Za-z][-.A-Za-z0-9]*")
#: Plain-text entities may add at most this many times the document's size when expanded;
#: past that every declaration is dropped. Real feeds declare one-character entities
#: (``&nbsp;``), whose references are longer than their values.
ENTITY_BUDGET: Final = 1
_WIDE_ENCODINGS: Final = (
    (b"\x00\x00\xfe\xff", "utf-32-be", 4),
    (b"\xff\xfe\x00\x00", "utf-32-le", 4),
    (b"\xfe\xff", "utf-16-be", 2),
    (b"\xff\xfe", "utf-16-le", 2),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\x00<\x00", "utf-16-be", 0),
    (b"<\x00?\x00", "utf-16-le", 0),
    (b"<\x00!\x00", "utf-16-le", 0),
)


def _defuse_entities(data: bytes) -> bytes:
    """Drop the DOCTYPE entity declarations that could expand recursively or refer outside the
    document (external ``SYSTEM``/``PUBLIC`` entities, parameter entities).

    feedparser already does this, but only for declarations at the start of a line; a
    one-line document would reach expat intact (expat's own amplification limit then stops
    a billion-laughs attack, after a second and ~150 MB). Putting every kept declaration on
    its own line also lets feedparser's filter see them.
    """
    for bom, codec, skip in _WIDE_ENCODINGS:
        if data.startswith(bom):
            try:
                text = data[skip:].decode(codec)
            except UnicodeDecodeError:
                return data
            cleaned = _defuse_utf8(text.encode("utf-8"))
            return data[:skip] + cleaned.decode("utf-8").encode(codec) if cleaned is not None else data
    cleaned = _defuse_utf8(data)
    return data if cleaned is None else cleaned


def _defuse_utf8(data: bytes) -> bytes | None:
    """The document with its entity declarations cleaned, or None when there is nothing to do.

    Two regions are cleaned: the DOCTYPE that follows the prolog, and whatever comes before
    the first element (feedparser's own idea of the "head", where its loose parser looks for
    declarations even in an ill-formed prolog). Only plain-text entities inside the DOCTYPE
    may stay, and only while every reference to them, expanded, adds at most
    :data:`ENTITY_BUDGET` times the document's own size: a feed of N bytes can never parse to
    more than a small multiple of N (feedparser's loose parser, the fallback for documents
    expat refuses, expands entities without any limit of its own).
    """
    prolog = _PROLOG_SKIP.match(data, 3 if data.startswith(b"\xef\xbb\xbf") else 0)
    doctype = _DOCTYPE_START.match(data, prolog.end()) if prolog else None
    start = end = 0
    if doctype is not None:
        start, end, depth = doctype.start(), len(data), 0
        for token in _DOCTYPE_TOKEN.finditer(data, doctype.end()):
            value = token.group()
            if value == b"[":
                depth += 1
            elif value == b"]":
                depth = max(0, depth - 1)
            elif value == b">" and depth == 0:
                end = token.end()
                break
    first_element = _FIRST_ELEMENT.search(data)
    head_end = max(end, first_element.start() if first_element else len(data))
    if data.find(b"<!", 0, head_end) == -1 or _ENTITY_START.search(data, 0, head_end) is None:
        return None

    kept: dict[bytes, int] = {}  # plain-text entities of the DOCTYPE: name -> value length
    for match in _ENTITY_DECL.finditer(data, start, end):
        safe = _SAFE_ENTITY.fullmatch(match.group())
        if safe is not None:
            kept[safe.group(1)] = len(safe.group(2) or safe.group(3) or b"")
    if kept and _expansion(data, end, kept) > ENTITY_BUDGET * len(data):
        kept = {}

    def keep_safe(match: re.Match[bytes]) -> bytes:
        safe = _SAFE_ENTITY.fullmatch(match.group())
        return b"\n" + match.group() if safe is not None and safe.group(1) in kept else b""

    # References to removed entities are left dangling: undefined entities, not file reads,
    # and the loose parser keeps them as the literal text "&name;".
    if doctype is None:
        return _ENTITY_DECL.sub(b"", data[:head_end]) + data[head_end:]
    cleaned = _ENTITY_DECL.sub(keep_safe, data[start:end])
    rest = _ENTITY_DECL.sub(b"", data[end:head_end]) + data[head_end:] if head_end > end else data[end:]
    return _ENTITY_DECL.sub(b"", data[:start]) + b"\n" + cleaned + rest


def _expansion(data: bytes, after: int, kept: dict[bytes, int]) -> int:
    """Bytes the references to ``kept`` entities after ``after`` expand to, counted generously.

    expat reads ``&name;``; feedparser's loose parser (sgmllib) reads a shorter name
    (letters, digits, ``-`` and ``.``) and needs no ``;``. A reference counts for every
    kept entity either parser could take it for.
    """
    total = 0
    for match in _ENTITY_REF.finditer(data, after):
        name = match.group(1)
        total += kept.get(name, 0)
        loose = _LOOSE_NAME.match(name)
        if loose is not None and loose.group() != name:
            total += kept.get(loose.group(), 0)
    return total


# --------------------------------------------------------------------------- JSON Feed


def _parse_json_feed(data: bytes, *, url: str, source: str, now: datetime) -> ParsedFeed:
    try:
        try:
            doc = json.loads(data)  # detects UTF-8 (with or without BOM), UTF-16 and UTF-32
        except UnicodeDecodeError:  # JSON Feed must be UTF-8; be lenient with stray bytes
            doc = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ParseError(f"not a feed: invalid JSON ({_one_line(str(exc))})") from exc
    if not isinstance(doc, dict):
        raise ParseError("not a feed: JSON document is not a JSON Feed object")
    version = doc.get("version")
    items = doc.get("items")
    if not (isinstance(version, str) and "jsonfeed.org/version/" in version) or not isinstance(items, list):
        raise ParseError("not a feed: JSON document is not a JSON Feed")

    title = clip(plain_title(_str(doc.get("title"))[: MAX_TITLE * _RAW_FACTOR]), MAX_TITLE)
    link = ""
    for candidate in (doc.get("home_page_url"), doc.get("feed_url"), url):
        link = canonical_url(_str(candidate), url or None)
        if link.startswith(("http://", "https://")):
            break
        link = ""
    feed_author = _json_author(doc)
    entries = (_json_entry(item, feed_author) for item in items[:MAX_ENTRIES] if isinstance(item, dict))
    articles = _build_articles(entries, base=link or url, source=source, now=now)
    warning = None
    if len(items) > MAX_ENTRIES:
        warning = f"more than {MAX_ENTRIES:,} entries: only the first {MAX_ENTRIES:,} were read"
    return ParsedFeed(title=title, link=link, articles=articles, format="json", warning=warning)


def _json_entry(item: dict[str, Any], feed_author: str) -> _Entry:
    content = _str(item.get("content_html"))
    if not content and item.get("content_text"):
        content = _as_html(_str(item.get("content_text")), "text/plain")
    summary = _as_html(_str(item.get("summary")), "text/plain")
    tags = item.get("tags")
    guid = item.get("id")
    return _Entry(
        links=[_str(item.get("url")), _str(item.get("external_url"))],
        title=_str(item.get("title")),
        author=_json_author(item) or feed_author,
        tags=tuple(_str(t) for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        published=_parse_date_text(item.get("date_published")),
        updated=_parse_date_text(item.get("date_modified")),
        summary=summary,
        content=content,
        guid=_str(guid) if isinstance(guid, (str, int)) and not isinstance(guid, bool) else "",
    )


def _json_author(obj: dict[str, Any]) -> str:
    authors = obj.get("authors")  # JSON Feed 1.1
    candidates = list(authors) if isinstance(authors, list) else []
    candidates.append(obj.get("author"))  # JSON Feed 1.0
    for author in candidates:
        if isinstance(author, dict) and author.get("name"):
            return _str(author.get("name"))
    return ""


def _parse_date_text(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return _from_struct(_feedparser_parse_date(text))
        except Exception:  # feedparser's date handlers are permissive but not exception-proof
            return None
    return _as_utc(parsed)


# --------------------------------------------------------------------------- shared


def _build_articles(entries: Iterable[_Entry], *, base: str, source: str, now: datetime) -> list[Article]:
    """Clean every entry; entries that collapse to the same uid keep the last one's data
    in the position of the first."""
    by_uid: dict[str, Article] = {}
    for entry in entries:
        article = _build_article(entry, base=base, source=source, now=now)
        by_uid[article.uid] = article  # re-assigning keeps the first insertion position
    return list(by_uid.values())


def _build_article(entry: _Entry, *, base: str, source: str, now: datetime) -> Article:
    url = next(_http_urls(entry.links, base), "")
    # Relative links in a body: against its xml:base (or the feed's URL, as feedparser reports
    # it), else against the article's page.
    html_base = entry.base if entry.base.startswith(("http://", "https://")) else url or base
    summary_html, summary_cut = _body(entry.summary, html_base)
    if entry.content == entry.summary:
        content_html, content_cut = summary_html, summary_cut
    else:
        content_html, content_cut = _body(entry.content, html_base)
    summary_text = html_to_text(summary_html)
    content_text = html_to_text(content_html) if content_html != summary_html else summary_text
    text = strip_boilerplate(content_text or summary_text)
    excerpt = excerpt_of(summary_text, EXCERPT_LIMIT) or excerpt_of(content_text, EXCERPT_LIMIT)
    # The note goes in after the plain text is taken: search and embeddings never see it.
    if summary_cut:
        summary_html += _truncated_note(url)
    if content_cut:
        content_html = summary_html if entry.content == entry.summary else content_html + _truncated_note(url)

    raw_title = repair_mojibake(entry.title[: MAX_TITLE * _RAW_FACTOR])
    title = clip(_clean_title(raw_title, entry.title_is_html), MAX_TITLE) or make_excerpt(text, 80)
    guid = entry.guid.strip()[:MAX_GUID]
    if url:
        key = dedup_key(url)
    elif guid:
        # A guid is only unique within its feed ("1", "post-1"), unless it is a URL or URN.
        key = f"guid:{guid}" if re.match(r"(?:https?|urn|tag):", guid, re.I) else f"guid:{base}|{guid}"
    else:
        fingerprint = f"{base}|{source}|{title}|{text[:500]}".encode("utf-8", "surrogatepass")
        key = "entry:" + hashlib.sha256(fingerprint).hexdigest()

    published, updated = _usable(entry.published, now), _usable(entry.updated, now)
    return Article(
        uid=article_uid(key),
        url=url,
        title=title,
        published=published or updated or now,
        source=source,
        author=clip(plain_title(entry.author[: MAX_AUTHOR * _RAW_FACTOR]), MAX_AUTHOR),
        tags=_clean_tags(entry.tags),
        updated=updated,
        date_estimated=published is None and updated is None,
        summary_html=summary_html,
        content_html=content_html,
        excerpt=excerpt,
        text=text,
        guid=guid,
        first_seen=now,
    )


def _body(html: str, base: str) -> tuple[str, bool]:
    """Sanitised body HTML within :data:`MAX_BODY_BYTES`, and whether it had to be cut."""
    if not html:
        return "", False
    raw = html[: MAX_BODY_BYTES * _RAW_FACTOR]
    capped, cut = cap_html(sanitize_html(repair_mojibake(raw), base), MAX_BODY_BYTES - 1024)
    return capped, cut or len(raw) < len(html)


def _truncated_note(url: str) -> str:
    note = htmllib.escape(TRUNCATED_NOTE.format(size=f"{MAX_BODY_BYTES // 1024} KB"))
    if url and len(url) <= 500:  # the note must fit in the room _body leaves for it
        link = htmllib.escape(url, quote=True)
        anchor = f'<a href="{link}" rel="{LINK_REL}">Read the original</a>'
        note = note.replace("Read the original", anchor, 1)
    return f"<p><em>{note}</em></p>"


def _http_urls(candidates: Iterable[str], base: str) -> Iterator[str]:
    for candidate in candidates:
        if candidate and candidate.strip() and len(candidate) <= MAX_URL:
            canon = canonical_url(candidate, base or None)
            if canon.startswith(("http://", "https://")):
                yield canon


def _clean_title(title: str, is_html: bool) -> str:
    if is_html and "<" in title:
        return html_to_text(title)
    return plain_title(title)


def _clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """At most :data:`MAX_TAGS` distinct tags of at most :data:`MAX_TAG` characters."""
    seen: dict[str, str] = {}
    for tag in tags:
        clean = clip(plain_title(tag[: MAX_TAG * _RAW_FACTOR]), MAX_TAG)
        if clean and clean.casefold() not in seen:
            seen[clean.casefold()] = clean
            if len(seen) == MAX_TAGS:
                break
    return tuple(seen.values())


def _usable(value: datetime | None, now: datetime) -> datetime | None:
    if value is None or value < EARLIEST_DATE or value > now + FUTURE_SLACK:
        return None
    return value


def _from_struct(value: object) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return _EPOCH + timedelta(seconds=calendar.timegm(value))
    except (OverflowError, ValueError, TypeError):
        return None


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _as_html(value: str, content_type: str) -> str:
    """Body text as HTML: plain text is escaped, paragraphs kept."""
    if not value or "plain" not in content_type.lower():
        return value
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", value) if p.strip()]
    return "".join(f"<p>{htmllib.escape(p)}</p>" for p in paragraphs)


def _first_significant_byte(data: bytes) -> bytes | None:
    """The first byte that is not whitespace or a byte-order mark (``<`` or ``{`` for feeds)."""
    view = data[:4096].lstrip(b"\xef\xbb\xbf\xfe\xff\x00 \t\r\n")
    if not view:
        return None if not data[4096:].strip() else b"?"
    return view[:1]


def _str(value: object) -> str:
    """Any parsed value as a string that encodes to UTF-8 (JSON can carry lone surrogates,
    which would break the store, the sanitizer and every consumer downstream)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _WARNING_LIMIT else line[: _WARNING_LIMIT - 1] + "…"
