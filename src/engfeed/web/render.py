"""Jinja2 environment (autoescape on, everywhere) and the template filters.

Only two kinds of stored text ever reach a page unescaped, and both are re-sanitised here
first: article bodies (``content_html``/``summary_html``, already cleaned by the parser,
cleaned again with nh3 as defence in depth) and search context passages (reduced to text
plus ``<mark>``). Every other field is plain text and goes through autoescaping.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from engfeed.models import Article
from engfeed.parse import EARLIEST_DATE
from engfeed.text import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, strip_html_trailer
from engfeed.urls import redact_credentials
from engfeed.web.cache import SizedLRU
from engfeed.web.params import date_param

WEB_DIR = Path(str(resources.files("engfeed") / "web"))
TEMPLATES = WEB_DIR / "templates"
STATIC = WEB_DIR / "static"

_SAFE_SCHEMES = {"http", "https"}
_BAD_URL_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_CONTENT_SCHEMES = {"http", "https", "mailto"}


def safe_url(value: object) -> str:
    """The URL if it is absolute http(s), else ``""`` (no ``javascript:``, ``data:``, ...)."""
    if not isinstance(value, str):
        return ""
    url = value.strip()
    if not url or _BAD_URL_CHARS.search(url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.netloc:
        return ""
    return url


def _clean(html: str) -> str:
    cleaned = str(nh3.clean(html, url_schemes=_CONTENT_SCHEMES, link_rel="noopener noreferrer nofollow"))
    if "<img" in cleaned:  # after nh3, every image tag is exactly "<img " + allowed attributes
        cleaned = cleaned.replace("<img ", '<img loading="lazy" decoding="async" ')
    return strip_html_trailer(cleaned)


#: Re-sanitised bodies of recently shown articles, bounded by bytes (a body is at most
#: 512 KB since parse-time caps, but stores written before them may hold larger ones).
_clean_body = SizedLRU(_clean, max_bytes=32 * 1024 * 1024)


def body_html(article: Article) -> Markup:
    """An article's stored (parser-sanitised) body, sanitised again, without the feed
    generator's "appeared first on" trailer, images loading lazily: the text extracted from
    the article page when that is the article's text, else the feed's content, else its
    summary."""
    page = article.page_html if article.text_source == "page" else ""
    html = page or article.content_html or article.summary_html
    return Markup(_clean_body(html)) if html else Markup("")


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_NOTE_TAGS = set(ALLOWED_TAGS) - {"img"}


def note_html(note: str | None) -> Markup:
    """A reader's Markdown note as HTML: CommonMark (raw HTML off), then the same allow-list
    sanitiser as article bodies, without images (a note must not load anything)."""
    if not note or not note.strip():
        return Markup("")
    html = _MARKDOWN.render(note)
    return Markup(
        nh3.clean(
            html,
            tags=_NOTE_TAGS,
            attributes=ALLOWED_ATTRIBUTES,
            url_schemes=_CONTENT_SCHEMES,
            link_rel="noopener noreferrer nofollow",
        )
    )


def mark_html(context: object) -> Markup:
    """A search context passage: text with ``<mark>``, nothing else survives."""
    if not isinstance(context, str) or not context:
        return Markup("")
    cleaned = nh3.clean(context, tags={"mark"}, attributes={}, clean_content_tags={"script", "style"})
    return Markup(cleaned)


def fmt_date(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value.astimezone(UTC)
    return f"{value:%b} {value.day}, {value.year}"


def host_of(url: str) -> str:
    """The host name of a URL, without ``www.`` (``"the site"`` when there is none)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    return host.removeprefix("www.") or "the site"


def undated(value: datetime | None) -> bool:
    """Is this the stand-in date of an entry whose feed had no date at all (see
    :func:`engfeed.parse.backfill_dates`)?"""
    return value is not None and value < EARLIEST_DATE


def fmt_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """ "3 h ago", "in 12 min", "just now"."""
    if value is None:
        return "never"
    now = now or datetime.now(UTC)
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return "now" if future else "just now"
    size, unit = next(
        (size, unit)
        for size, unit in ((86400 * 365, "y"), (86400 * 30, "mo"), (86400, "d"), (3600, "h"), (60, "min"))
        if seconds >= size
    )
    text = f"{round(seconds / size)} {unit}"
    return f"in {text}" if future else f"{text} ago"


def minutes(seconds: float) -> str:
    value = seconds / 60
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} minute" if text == "1" else f"{text} minutes"


def eta(seconds: float | None) -> str:
    """A wait in words: "under a minute", "~3 min", "~2 h"."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "under a minute"
    if seconds < 5400:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.0f} h"


def schema_type(schema: object) -> str:
    """A JSON Schema fragment (from the OpenAPI document) as a short human-readable type."""
    if not isinstance(schema, dict):
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "allOf" in schema:
        return " + ".join(schema_type(s) for s in schema["allOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "")
    if isinstance(kind, list):
        kind = " | ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {schema_type(schema.get('items', {})) or 'any'}"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind or "any")


def number(value: int) -> str:
    return f"{value:,}"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"


def fmt_score(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value != 0 and abs(value) < 0.001:
            return f"{value:.2e}"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


WHY_LABELS = {
    "bm25_rank": "Keyword (BM25) rank",
    "bm25": "Keyword (BM25) score",
    "bm25_score": "Keyword (BM25) score",
    "dense_rank": "Meaning (dense) rank",
    "dense": "Meaning (dense) similarity",
    "dense_score": "Meaning (dense) similarity",
    "cosine": "Meaning (dense) similarity",
    "recency": "Recency (0-1)",
    "recency_boost": "Recency boost",
    "age_days": "Age (days)",
    "rrf": "Fused (RRF) score",
    "fused": "Final score",
    "angle": "Angle boost",
    "score": "Final score",
}


def why_label(key: str) -> str:
    return WHY_LABELS.get(key, key.replace("_", " ").capitalize())


def static_version(directory: Path = STATIC) -> str:
    """A short hash of the static files, appended to their URLs to bust browser caches."""
    digest = hashlib.sha256()
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters: dict[str, Any] = {
        "safe_url": safe_url,
        "redact": redact_credentials,
        "undated": undated,
        "host": host_of,
        "mark_html": mark_html,
        "note_html": note_html,
        "body_html": body_html,
        "date": fmt_date,
        "datetime": fmt_datetime,
        "iso": iso,
        "date_param": date_param,
        "ago": ago,
        "number": number,
        "score": fmt_score,
        "why_label": why_label,
        "minutes": minutes,
        "eta": eta,
        "schema_type": schema_type,
    }
    env.filters.update(filters)
    env.globals["plural"] = plural
    env.globals["static_v"] = static_version()
    return env
