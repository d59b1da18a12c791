"""Article text from an article's web page: the one place HTML pages become article text.

Feeds that carry only a teaser (see :func:`is_teaser`) get their text from the article page.
:func:`extract_page` turns the page's bytes into sanitised article HTML and plain text with
trafilatura (chosen on the ScrapingHub 181-page benchmark, measured here: F1 0.96 at 27 ms
per page median, ahead of readability-lxml 0.955, newspaper4k 0.94, goose3 0.88; notes in
``../shared/notes/next-capabilities.md``).

We ask trafilatura for HTML rather than Markdown: headings survive either way (summaries need
them for sections), and HTML goes through the same allow-list sanitiser as feed bodies
(:func:`engfeed.text.sanitize_html`) with the same size cap, so an extracted page is shown,
searched and summarised exactly like a feed's own text. Never raises for anything a page
contains: every outcome is a :class:`PageText` whose ``status`` says what the page was.

A page that says its encoding is decoded here, as browsers do (a byte-order mark, else the
``charset`` of the Content-Type header, else a ``<meta>`` charset in its first 1024 bytes;
``iso-8859-1`` and ``us-ascii`` read as windows-1252): trafilatura ignores both and guesses,
which turns a windows-1252 "crème" into "crčme". Only a page that says nothing is left to its
guess.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import logging
import re
from configparser import ConfigParser
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from engfeed.parse import MAX_BODY_BYTES
from engfeed.text import cap_html, html_to_text, plain_title, sanitize_html

log = logging.getLogger("engfeed.extract")

#: A feed text under this many words is a teaser: its article page is fetched. Measured on
#: the shared corpus (8,671 articles): 95.8% of description-only items are under 150 words
#: (74% under 50), while 94.9% of items with full content are over it (the few under it are
#: short notes, where fetching the page costs one request and changes nothing).
TEASER_WORDS = 150
#: Extracted text under this many words is not an article (a paywall, a login wall, a video
#: or product page, an error page that answered 200).
MIN_ARTICLE_WORDS = 80
#: Pages with more elements than this are not extracted (hostile or broken HTML; a long real
#: article page has a few thousand). trafilatura's time grows faster than the element count:
#: measured here, 20k elements take 3.5 s, 50k take 14 s and 200k take over 6 minutes, so
#: the count is checked on the bytes, before any parsing.
MAX_TREE_ELEMENTS = 30_000

HTML_TYPES = ("text/html", "application/xhtml+xml")

Status = Literal["ok", "not_article"]

_LOGIN_PATH = re.compile(r"/(?:log-?in|sign-?in|signin|auth|sso|account/login|session)(?:/|$|\?|\.)", re.I)
_LEADING_H1 = re.compile(r"^\s*<h1>(.*?)</h1>\s*", re.S | re.I)


@dataclass(frozen=True, slots=True)
class PageText:
    """What an article page gave: sanitised article HTML and its plain text (``ok``), or why
    the page holds no article (``not_article``, with ``reason``)."""

    status: Status
    html: str = ""
    text: str = ""
    reason: str = ""

    @property
    def words(self) -> int:
        return len(self.text.split())


def is_teaser(text: str) -> bool:
    """Is a feed's plain text only a teaser of the article (see :data:`TEASER_WORDS`)?"""
    return len(text.split()) < TEASER_WORDS


def not_article(reason: str) -> PageText:
    return PageText("not_article", reason=reason)


def extract_page(
    body: bytes, *, url: str, content_type: str = "", title: str = "", requested: str | None = None
) -> PageText:
    """The article in an HTML page fetched from ``url`` (the final URL, after redirects from
    ``requested``). A redirect to a login path (``/login``, ``/signin``, ``/auth``...) means the
    article is behind a login; an article that lives under such a path is read as usual."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind and kind not in HTML_TYPES:
        return not_article(f"not an HTML page ({kind})")
    if _looks_like_login(url) and not _same_page(requested, url):
        return not_article("the page asks to log in")
    page = _decoded(body, content_type)
    if _too_many_elements(page):
        return not_article(f"the page has over {MAX_TREE_ELEMENTS:,} elements (not an article)")
    try:
        html = _trafilatura(page, url)
    except Exception as exc:  # the contract: a page never breaks a refresh
        log.info("extraction failed for %s: %s: %s", url, type(exc).__name__, exc)
        return not_article(f"the page could not be read ({type(exc).__name__})")
    if not html:
        return not_article("no article text found on the page")
    cleaned = sanitize_html(html, url)
    cleaned = _drop_title_heading(cleaned, title)
    cleaned, _ = cap_html(cleaned, MAX_BODY_BYTES)
    text = html_to_text(cleaned)
    if len(text.split()) < MIN_ARTICLE_WORDS:
        return not_article("too little text on the page (a paywall, a login wall or not an article)")
    return PageText("ok", html=cleaned, text=text)


def _trafilatura(body: bytes | str, url: str) -> str | None:
    import trafilatura  # ~0.3 s to import: only when a page is extracted

    result = trafilatura.extract(
        body,
        url=url or None,
        output_format="html",
        include_comments=False,
        include_tables=True,
        include_images=True,
        include_formatting=True,
        include_links=True,
        with_metadata=False,
        config=_settings(),
    )
    return str(result) if result else None


@functools.cache
def _settings() -> ConfigParser:
    from trafilatura.settings import use_config

    settings = use_config()
    settings.set("DEFAULT", "MAX_TREE_SIZE", str(MAX_TREE_ELEMENTS))
    return settings


_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# What browsers read for these labels (WHATWG Encoding): windows-1252, a superset.
_LEGACY_LABELS = frozenset(
    {"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp819", "ibm819",
     "us-ascii", "ascii", "iso-ir-100", "csisolatin1"}
)  # fmt: skip


def _decoded(body: bytes, content_type: str) -> bytes | str:
    """The page as text when it says its encoding (see the module docstring), else its bytes."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, "replace")
    for found in (_HEADER_CHARSET.search(content_type), _META_CHARSET.search(body[:1024])):
        if found is None:
            continue
        label = found.group(1)
        label = (label.decode("ascii", "replace") if isinstance(label, bytes) else label).lower()
        if found.re is _META_CHARSET and label.replace("_", "").replace("-", "").startswith(
            ("utf16", "utf32")
        ):
            label = "utf-8"  # a meta tag read as ASCII cannot be in UTF-16/32: browsers read UTF-8
        try:
            return body.decode("cp1252" if label in _LEGACY_LABELS else label, "replace")
        except (LookupError, UnicodeError, ValueError):  # unknown, not a text encoding, strict only
            continue
    return body


_START_TAG = re.compile(rb"<[A-Za-z]")
_START_TAG_TEXT = re.compile(r"<[A-Za-z]")


def _too_many_elements(page: bytes | str) -> bool:
    """More than :data:`MAX_TREE_ELEMENTS` start tags (every element starts with ``<`` and a
    letter, so this bounds the element count from above), counted before lxml builds a tree
    of a hostile page; stops counting at the limit. Counted on the decoded text when the page
    said its encoding (in UTF-16 bytes no tag looks like one)."""
    tags = _START_TAG_TEXT.finditer(page) if isinstance(page, str) else _START_TAG.finditer(page)
    return next(itertools.islice(tags, MAX_TREE_ELEMENTS, None), None) is not None


def _same_page(requested: str | None, url: str) -> bool:
    """Is ``url`` the page ``requested`` (not redirected, or only to https or a trailing
    slash)? An article living under /auth/ is read; a redirect to a sign-in page is not."""
    if requested is None:
        return False

    def key(u: str) -> str:
        return u.split("://", 1)[-1].split("#", 1)[0].rstrip("/")

    return key(requested) == key(url)


def _looks_like_login(url: str) -> bool:
    """Is ``url``'s path a sign-in page's?"""
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    return bool(_LOGIN_PATH.search(path))


def _drop_title_heading(html: str, title: str) -> str:
    """trafilatura keeps the page's ``<h1>``: drop it when it repeats the article's title."""
    found = _LEADING_H1.match(html)
    if found and title and plain_title(html_to_text(found.group(1))).lower() == plain_title(title).lower():
        return html[found.end() :]
    return html
