"""OPML in and out: the lingua franca of feed readers for subscription lists."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from engfeed.errors import EngfeedError
from engfeed.models import Source


@dataclass(frozen=True, slots=True)
class Outline:
    name: str
    url: str
    site_url: str = ""


MAX_OPML_BYTES = 10 * 1024 * 1024
MAX_OUTLINES = 10_000


def parse_opml(data: bytes | str) -> list[Outline]:
    """Every outline with an ``xmlUrl``, at any depth; raises EngfeedError on non-OPML input.

    At most :data:`MAX_OPML_BYTES` and :data:`MAX_OUTLINES` feeds, else a clear error. A
    document declaring entities is refused outright (OPML has no use for them, and a
    plain-text entity referenced many times is the cheapest way to blow up a parser);
    ElementTree never resolves external entities, so no file can read local files.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_OPML_BYTES:
        size, limit = len(raw) / 1024 / 1024, MAX_OPML_BYTES // 1024 // 1024
        raise EngfeedError(f"OPML file too large ({size:.1f} MB; the limit is {limit} MB)")
    if b"<!ENTITY" in raw.upper():
        raise EngfeedError("not accepted: this OPML file declares XML entities, which OPML never needs")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise EngfeedError(f"not a valid OPML file: {exc}") from exc
    if root.tag.lower() != "opml":
        raise EngfeedError(f"not an OPML file (root element is <{root.tag}>)")
    found: list[Outline] = []
    seen: set[str] = set()
    for node in root.iter("outline"):
        url = (node.get("xmlUrl") or node.get("xmlurl") or "").strip()
        if not url or url in seen:
            continue
        seen.add(url)
        name = (node.get("text") or node.get("title") or "").strip() or url
        found.append(Outline(name=name, url=url, site_url=(node.get("htmlUrl") or "").strip()))
        if len(found) > MAX_OUTLINES:
            raise EngfeedError(f"OPML file has more than {MAX_OUTLINES:,} feeds; split it into smaller files")
    return found


def to_opml(sources: Iterable[Source], title: str = "Engineering Feed sources") -> str:
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for src in sources:
        attrs = {"type": "rss", "text": src.name, "title": src.name, "xmlUrl": src.url}
        if src.site_url:
            attrs["htmlUrl"] = src.site_url
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def default_sources() -> list[Outline]:
    """The bundled curated list of company engineering blogs."""
    data = (resources.files("engfeed") / "data" / "default_sources.opml").read_bytes()
    return parse_opml(data)
