"""Output feeds: any view of the page as Atom 1.0 or JSON Feed 1.1.

Both are built from data structures (ElementTree, ``json``), never by pasting strings, so
escaping is the serialiser's job. Characters XML 1.0 forbids are dropped first: an article
title with a stray control character must not make the whole feed unparseable.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engfeed.models import Article
from engfeed.web.render import iso, safe_url

ATOM_NS = "http://www.w3.org/2005/Atom"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class FeedItem:
    article: Article
    page_url: str  # this app's page for the article (absolute)
    context: str = ""  # search context passage (escaped HTML with <mark>), if any


@dataclass(frozen=True, slots=True)
class FeedMeta:
    title: str
    subtitle: str
    self_url: str  # absolute URL of this feed document
    home_url: str  # absolute URL of the page showing the same view
    id: str


def xml_text(value: str) -> str:
    return _XML_INVALID.sub("", value)


def _updated(items: Sequence[FeedItem]) -> datetime:
    stamps = [it.article.updated or it.article.published for it in items]
    return max(stamps) if stamps else datetime(1970, 1, 1, tzinfo=UTC)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_text(text)
    return el


def _atom_root(meta: FeedMeta, updated: datetime) -> ET.Element:
    """An Atom ``feed`` element with the feed-level metadata filled in."""
    ET.register_namespace("", ATOM_NS)
    root = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(root, "id", meta.id)
    _sub(root, "title", meta.title)
    if meta.subtitle:
        _sub(root, "subtitle", meta.subtitle)
    _sub(root, "updated", iso(updated))
    _sub(root, "link", rel="self", type="application/atom+xml", href=meta.self_url)
    _sub(root, "link", rel="alternate", type="text/html", href=meta.home_url)
    _sub(root, "generator", "Engineering Feed")
    author = _sub(root, "author")
    _sub(author, "name", "Engineering Feed")
    return root


def atom_feed(meta: FeedMeta, items: Sequence[FeedItem]) -> bytes:
    root = _atom_root(meta, _updated(items))
    for item in items:
        art = item.article
        entry = _sub(root, "entry")
        _sub(entry, "id", f"urn:engfeed:article:{art.uid}")
        _sub(entry, "title", art.title or "(untitled)", type="text")
        link = safe_url(art.url) or item.page_url
        _sub(entry, "link", rel="alternate", type="text/html", href=link)
        _sub(entry, "link", rel="related", type="text/html", href=item.page_url)
        _sub(entry, "published", iso(art.published))
        _sub(entry, "updated", iso(art.updated or art.published))
        entry_author = _sub(entry, "author")
        _sub(entry_author, "name", art.author or art.source or "unknown")
        if art.source:
            _sub(entry, "category", term=art.source, label=f"company: {art.source}")
        for angle in art.angles:
            _sub(entry, "category", term=angle.name, label=f"useful angle: {angle.name}")
        summary = art.excerpt
        if item.context:
            _sub(entry, "summary", item.context, type="html")
        elif summary:
            _sub(entry, "summary", summary, type="text")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def json_feed(meta: FeedMeta, items: Sequence[FeedItem]) -> bytes:
    out_items: list[dict[str, object]] = []
    for item in items:
        art = item.article
        entry: dict[str, object] = {
            "id": f"urn:engfeed:article:{art.uid}",
            "url": safe_url(art.url) or item.page_url,
            "external_url": item.page_url,
            "title": art.title,
            "content_text": art.excerpt or art.title,
            "date_published": iso(art.published),
            "date_modified": iso(art.updated or art.published),
            "authors": [{"name": art.author or art.source or "unknown"}],
            "tags": [t for t in (art.source, *(a.name for a in art.angles)) if t],
            "_engfeed": {
                "source": art.source,
                "angles": [a.to_json() for a in art.angles],
            },
        }
        if art.excerpt:
            entry["summary"] = art.excerpt
        if item.context:
            entry["content_html"] = item.context
        out_items.append(entry)
    doc = {
        "version": JSON_FEED_VERSION,
        "title": meta.title,
        "description": meta.subtitle,
        "home_page_url": meta.home_url,
        "feed_url": meta.self_url,
        "language": "en",
        "items": out_items,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One week's digest as an Atom entry: its ISO week, period and mail HTML."""

    week: str
    title: str
    published: datetime  # when the week's digest is complete (or now, for the current week)
    html: str
    page_url: str  # absolute URL of the page previewing it


def digest_atom(meta: FeedMeta, items: Sequence[DigestItem]) -> bytes:
    """The weekly digests as an Atom feed: one entry per ISO week, newest first."""

    root = _atom_root(meta, max((it.published for it in items), default=datetime(1970, 1, 1, tzinfo=UTC)))
    for item in items:
        entry = _sub(root, "entry")
        _sub(entry, "id", f"urn:engfeed:digest:{item.week}")
        _sub(entry, "title", item.title, type="text")
        _sub(entry, "link", rel="alternate", type="text/html", href=item.page_url)
        _sub(entry, "updated", iso(item.published))
        _sub(entry, "content", item.html, type="html")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
