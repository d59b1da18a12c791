"""HTML cleaning and plain-text helpers for feed content.

Pure functions, no I/O. ``nh3`` (the Rust ``ammonia`` sanitizer) does both jobs that touch
markup: the allow-list sanitizing of HTML we store and display, and the tag stripping
behind :func:`html_to_text`. Both run at tens of microseconds per article.
"""

from __future__ import annotations

import html as htmllib
import re
from functools import lru_cache
from typing import Final

import nh3

__all__ = [
    "cap_html",
    "clean_text",
    "clip",
    "excerpt_of",
    "html_to_text",
    "make_excerpt",
    "plain_title",
    "repair_mojibake",
    "sanitize_html",
    "strip_boilerplate",
    "strip_html_trailer",
    "terminal_safe",
    "title_key",
]

ELLIPSIS: Final = "…"

ALLOWED_TAGS: Final = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup",
        "dd", "del", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
        "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
        "small", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
        "u", "ul", "var",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: Final = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}
URL_SCHEMES: Final = frozenset({"http", "https", "mailto"})
LINK_REL: Final = "noopener noreferrer nofollow"
# Elements whose *content* is dropped too, not just the tags.
DROP_CONTENT_TAGS: Final = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "canvas", "select"}
)

# Tags after which words must not glue together once the markup is gone.
_BLOCK_TAG = re.compile(
    r"<(?=/?(?:address|article|aside|blockquote|br|caption|dd|details|div|dl|dt|figcaption|figure|"
    r"footer|h[1-6]|header|hr|img|li|main|nav|ol|p|pre|section|summary|table|tbody|td|tfoot|th|"
    r"thead|tr|ul)[\s/>])",
    re.IGNORECASE,
)
# Control characters that str.split() does not already treat as whitespace.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]+")
# Inline markup that turns up in titles (``<code>``, ``<wbr>``, ``<em>``). Anything else
# that looks like a tag is kept: "Using <select> in forms" is a title about the element.
_TITLE_TAG = re.compile(
    r"</?(?:a|abbr|b|br|cite|code|del|em|font|i|ins|kbd|mark|q|s|samp|small|span|strike|strong|"
    r"sub|sup|tt|u|var|wbr)(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)

# Boilerplate that feed generators append to summaries, matched at the end of the text:
# (cheap lower-case substrings that must occur first, pattern, "the text was cut short").
_TRAILERS: Final = (
    # WordPress / Yoast: "The post <title> appeared first on <site>." and variants.
    (
        ("the post",),
        re.compile(
            r"\s*\bThe post\b.{1,400}?\b(?:appeared first|first appeared)\s+on\b.{0,160}$",
            re.IGNORECASE | re.DOTALL,
        ),
        False,
    ),
    # Medium: "<title> was originally published in <publication> on Medium, where people are
    # continuing the conversation by highlighting and responding to this story."
    (
        ("originally published",),
        re.compile(
            r"(?:^|(?<=[.!?…]))[^.!?…]{0,300}?\bwas originally published in\b"
            r".{1,200}?\bon Medium\b[^\n]{0,150}$",
            re.IGNORECASE | re.DOTALL,
        ),
        False,
    ),
    # "Read More...", "Read more", "Read the full post". Only as a sentence of its own, so that
    # an article ending in "you can read more about it in the docs." keeps its last sentence.
    (
        ("read more", "read the full"),
        re.compile(
            r"(?:^|(?<=[.!?…\]»\"”'’)]))\s*(?:read\s+more|read\s+the\s+full\s+(?:post|article|story))"
            r"\b[^.!?\n]{0,100}?(?:\.\.\.|…|→|»|›|>>|\.)?\s*$",
            re.IGNORECASE,
        ),
        True,
    ),
    # "Continue reading →", "Continue reading on Medium »", 'Continue reading "Some title"',
    # also straight after a sentence cut mid-way ("... knowing how Continue reading").
    (
        ("continue reading", "keep reading"),
        re.compile(
            r"\s*\b(?:continue|keep)\s+reading\b[^.!?\n]{0,100}?(?:\.\.\.|…|→|»|›|>>|\.)?\s*$",
            re.IGNORECASE,
        ),
        True,
    ),
)
# Markers that say the publisher cut the text short: "[…]", "[...]", "[&hellip;]", "…".
_TRUNCATION = re.compile(r"\s*(?:\[\s*(?:…|\.\.\.|&hellip;|&#8230;)\s*\]|…|\.\.\.)\s*$")
_TAIL_WINDOW = 800  # boilerplate lives in the last few hundred characters
_LEFTOVER_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,8}|#[0-9]{2,6}|#[xX][0-9A-Fa-f]{2,5});")
# UTF-8 read as windows-1252 ("canâ€™t", "cafÃ©"): a lead byte then 1-3 continuation bytes,
# each shown as its windows-1252 character.
_CP1252_CONT = (
    "\x80-\xbf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014"
    "\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
_MOJIBAKE = re.compile(f"[\xc2-\xf4][{_CP1252_CONT}]{{1,3}}")


def sanitize_html(html: str, base_url: str | None) -> str:
    """Allow-list sanitize ``html`` for storage and display.

    Keeps structural and inline formatting, links (``href``, given ``rel="noopener
    noreferrer nofollow"``), images (``src``, ``alt``) and tables; only ``http``, ``https``
    and ``mailto`` URLs survive. ``<script>``, ``<style>``, ``<iframe>`` and similar lose
    their content as well as their tags. Relative URLs are resolved against ``base_url``
    when it is an absolute http(s) URL, and removed otherwise (they would point at us).
    """
    if not html:
        return ""
    cleaner = _cleaner(base_url if base_url and base_url.startswith(("http://", "https://")) else None)
    cleaned = cleaner.clean(_valid_str(html))
    if "<img" in cleaned:
        cleaned = _IMG.sub(_drop_tracking_pixel, cleaned)
    return cleaned.strip()


# Tracking pixels: 1x1 (or 0x0) images, and the view beacons of FeedBurner and Medium, which
# report every reader who opens the article page to the publisher's analytics.
_IMG = re.compile(r"<img\b[^>]*>")
_DIMENSION = re.compile(r'\b(width|height)="\s*(\d+)(?:px)?\s*"')
_BEACON = re.compile(r'\bsrc="https?://(?:feeds\.feedburner\.com/~r/|medium\.com/_/stat\b)')


def _drop_tracking_pixel(m: re.Match[str]) -> str:
    tag = m.group()
    dims = {k: int(v) for k, v in _DIMENSION.findall(tag)}
    if len(dims) == 2 and max(dims.values()) <= 1:
        return ""
    return "" if _BEACON.search(tag) else tag


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: tags and their script/style content removed,
    entities decoded, block elements separated, whitespace collapsed to single spaces."""
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return " ".join(_CONTROL.sub(" ", html).split())
    marked = _BLOCK_TAG.sub(" <", _valid_str(html))
    stripped = _TEXT_CLEANER.clean(marked)
    return " ".join(_CONTROL.sub(" ", htmllib.unescape(stripped)).split())


def plain_title(s: str) -> str:
    """A title (or author name, tag) as plain text: inline HTML tags dropped, entities
    decoded, whitespace collapsed. Feeds often escape titles twice, so the ``&amp;`` that
    is left after XML parsing becomes ``&`` here."""
    if not s:
        return ""
    if "<" in s:
        s = _TITLE_TAG.sub("", s)
    if "&" in s:
        s = htmllib.unescape(s)
    return " ".join(_CONTROL.sub(" ", s).split())


def title_key(title: str) -> str:
    """A title compared as the same post: case and spacing ignored."""
    return " ".join(title.casefold().split())


def repair_mojibake(s: str) -> str:
    """Undo UTF-8 text that was decoded as windows-1252 somewhere upstream ("canâ€™t" ->
    "can’t"). Only sequences that re-encode to valid UTF-8 are touched."""
    if "â" not in s and "Ã" not in s and "Â" not in s:
        return s
    return _MOJIBAKE.sub(_unmojibake, s)


def _unmojibake(match: re.Match[str]) -> str:
    raw = bytearray()
    for ch in match.group():
        try:
            raw += ch.encode("cp1252")
        except UnicodeEncodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d pass through as C1 controls
            raw.append(ord(ch))  # always < 0x100: the pattern only matches such characters
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return match.group()


# The same trailers as markup, as a last paragraph (possibly after an <hr>) of a sanitised body:
# WordPress "<p>The post <a>Title</a> appeared first on <a>Site</a>.</p>" (13% of the shared
# corpus) and Medium "<p><a>Title</a> was originally published in <a>Pub</a> on Medium, ...</p>".
_HTML_TRAILER = re.compile(
    r"(?:<hr\s*/?>\s*)?<p>(?:(?!</?p\b).){0,1200}?"
    r"\b(?:appeared first on|first appeared on|was originally published in)\b"
    r"(?:(?!</?p\b).){0,600}?</p>\s*$",
    re.IGNORECASE | re.DOTALL,
)


def strip_html_trailer(html: str) -> str:
    """``html`` without a closing "The post ... appeared first on ..." style paragraph."""
    if len(html) > _TAIL_WINDOW * 3:
        head, tail = html[: -_TAIL_WINDOW * 3], html[-_TAIL_WINDOW * 3 :]
    else:
        head, tail = "", html
    lowered = tail.lower()
    if "first on" not in lowered and "originally published" not in lowered:
        return html
    if "<" not in tail:  # a plain-text summary: the trailer is the end of its only paragraph
        for _, pattern, _ in _TRAILERS[:2]:
            tail = pattern.sub("", tail)
        return head + tail.rstrip()
    return head + _HTML_TRAILER.sub("", tail).rstrip()


def strip_boilerplate(text: str) -> str:
    """``text`` without the trailers feed generators append: "The post X appeared first
    on Y.", "Read More...", "Continue reading →", "[…]", "[...]" and trailing ellipses."""
    return _strip_boilerplate(text)[0]


def make_excerpt(text: str, limit: int = 300) -> str:
    """At most ``limit`` characters of ``text`` (whitespace collapsed), cut at a word
    boundary. A cut excerpt ends with "…"; a word is never cut in half, so when even the
    first word does not fit, the excerpt is just "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    head = text[: limit - 1]  # room for the ellipsis
    if not text[limit - 1].isspace():
        head = head.rpartition(" ")[0]  # drop the partial last word
    head = head.rstrip(" ,;:-–—([{")
    return head + ELLIPSIS


def excerpt_of(text: str, limit: int = 300) -> str:
    """The card excerpt: boilerplate stripped, then :func:`make_excerpt`.

    When the publisher had already truncated the text (it ended in "[…]" or "Read
    more..."), the excerpt says so with a closing "…" even if it fits within ``limit``.
    """
    if "&" in text and _LEFTOVER_ENTITY.search(text):  # the publisher escaped its HTML twice
        text = htmllib.unescape(text)
    clean, truncated = _strip_boilerplate(text)
    clean = " ".join(clean.split())
    if truncated and clean and len(clean) <= limit and clean[-1] not in ".!?":
        if len(clean) < limit:
            return clean.rstrip(" ,;:-–—([{") + ELLIPSIS
        return make_excerpt(clean, limit - 1)
    return make_excerpt(clean, limit)


def _strip_boilerplate(text: str) -> tuple[str, bool]:
    """(text without trailers, whether a truncation marker or "read more" link was cut)."""
    text = text.rstrip()
    if not text:
        return "", False
    cut = max(0, len(text) - _TAIL_WINDOW)
    head, tail = text[:cut], text[cut:]
    truncated = False
    changed = True
    while changed and tail:
        changed = False
        lowered = " ".join(tail.lower().split())
        for needles, pattern, marks_truncation in _TRAILERS:
            if not any(needle in lowered for needle in needles):
                continue  # the regexes scan every position: skip them when they cannot match
            new = pattern.sub("", tail, count=1)
            if new != tail:
                truncated = truncated or marks_truncation
                tail, changed = new.rstrip(), True
                lowered = " ".join(tail.lower().split())
        if tail.endswith(("]", "…", "...")):
            new = _TRUNCATION.sub("", tail, count=1)
            if new != tail:
                tail, changed, truncated = new.rstrip(), True, True
    return (head + tail).rstrip(), truncated


def _valid_str(s: str) -> str:
    """``s`` made encodable as UTF-8 (lone surrogates replaced) so Rust code accepts it."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")
    return s


@lru_cache(maxsize=64)
def _cleaner(base_url: str | None) -> nh3.Cleaner:
    relative: nh3.UrlRelative = ("rewrite_with_base", base_url) if base_url else "deny"
    try:
        return nh3.Cleaner(
            tags=set(ALLOWED_TAGS),
            clean_content_tags=set(DROP_CONTENT_TAGS),
            attributes=ALLOWED_ATTRIBUTES,
            link_rel=LINK_REL,
            url_schemes=set(URL_SCHEMES),
            url_relative=relative,
        )
    except ValueError:  # a base URL the sanitizer cannot parse
        return _cleaner(None)


_TEXT_CLEANER: Final = nh3.Cleaner(tags=set(), clean_content_tags=set(DROP_CONTENT_TAGS), attributes={})


# --------------------------------------------------------------------------- caps


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the cut shown by a closing "…"."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + ELLIPSIS


# End tags of the block elements a sanitised body can hold: the preferred places to cut it.
_BLOCK_END = re.compile(r"</(?:p|li|ul|ol|dl|pre|blockquote|table|h[1-6]|figure)>", re.IGNORECASE)


def cap_html(html: str, limit: int) -> tuple[str, bool]:
    """A sanitised body cut to at most ``limit`` bytes of UTF-8, and whether it was cut.

    The cut falls after the last block element that fits (else before the last tag that
    fits, never inside a tag or an entity: in sanitised HTML every ``<`` opens a tag), and
    the elements still open there are closed again by re-sanitising, so the result is as
    well-formed as the input. Nothing is appended: the caller adds its own note.
    """
    if len(html) <= limit // 4 or len(html.encode("utf-8", "surrogatepass")) <= limit:
        return html, False
    budget = limit
    while budget > 0:
        head = html.encode("utf-8", "surrogatepass")[:budget].decode("utf-8", "ignore")
        ends = [m.end() for m in _BLOCK_END.finditer(head, len(head) // 2)]
        cut = ends[-1] if ends else head.rfind("<")
        if cut <= 0:
            cut = len(head) if "<" not in head else 0
        closed = _cleaner(None).clean(head[:cut]).strip() if cut > 0 else ""
        size = len(closed.encode("utf-8", "surrogatepass"))
        if size <= limit:
            return closed, True
        budget -= max(size - limit, limit // 64, 1)  # closing tags took more room: cut earlier
    return "", True


# C0 and C1 control characters (ESC, CSI U+009B, BEL, ...): a terminal acts on them.
# C0/C1 controls, and the bidirectional overrides and isolates (U+202A-202E, U+2066-2069),
# which reorder what follows them on the line.
_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_TERMINAL_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str, *, multiline: bool = False) -> str:
    """``text`` fit to print on a terminal: every C0/C1 control character removed (tabs and,
    with ``multiline``, newlines kept), so a server's text can never move the cursor, retitle
    the window or rewrite what was printed before; bidirectional overrides removed too, so it
    cannot reorder the rest of the line."""
    pattern = _TERMINAL_CONTROL if multiline else _TERMINAL_CONTROL_LINE
    return pattern.sub("", text) if pattern.search(text) else text


# C0/C1 controls, bidirectional overrides and lone surrogates: never meaningful in a query or
# a name, and unsafe in XML/SQLite or on a terminal.
_QUERY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def has_control_chars(value: str) -> bool:
    """Does ``value`` hold what :func:`clean_text` drops (a control character, a direction
    override, a lone surrogate)? For names that must be refused rather than cleaned."""
    return _QUERY_CONTROL.search(value) is not None


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: str) -> str:
    """``value`` with lone surrogates (undecodable bytes, a JSON ``"\\ud800"``) as U+FFFD:
    text every store, file and terminal can hold."""
    return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value


def clean_text(value: str, limit: int) -> str:
    """A line typed by a user (a query, a name): control characters and lone surrogates
    (undecodable bytes of a command-line argument) dropped, whitespace collapsed, at most
    ``limit`` characters."""
    value = " ".join(_QUERY_CONTROL.sub(" ", value).split())
    return value[:limit].strip()
