"""Short display names for sources: "Meta", not "Engineering at Meta"."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_AFFIXES = [
    r"^the\s+",
    r"^engineering\s+(at|@)\s+",
    r"^(stories|posts)\s+by\s+",
    r"\s+on\s+medium$",
    r"\s*[-–—|:]\s*medium$",
    r"\s*[-–—|:]\s*(engineering|tech|technology|developer|dev)?\s*blog$",
    r"\s*[-–—|:]\s*(engineering|technology)$",
    r"\s+(engineering|tech|technology|developer|developers|dev|product)\s+(blog|team)$",
    r"\s+(engineering|tech)$",
    r"\s+blog$",
    r"\s+news$",
]
_HOST_NOISE = {
    "www",
    "blog",
    "blogs",
    "engineering",
    "eng",
    "tech",
    "medium",
    "feeds",
    "feed",
    "com",
    "org",
    "io",
}


def short_name(title: str, link: str = "", fallback: str = "") -> str:
    """Strip the words feeds wrap around a company name; fall back to the site's host."""
    name = re.sub(r"\s+", " ", title or "").strip()
    for _ in range(3):
        before = name
        for pattern in _AFFIXES:
            name = re.sub(pattern, "", name, flags=re.IGNORECASE).strip()
        if name == before:
            break
    if name:
        return name[:80]
    host = urlsplit(link).hostname or "" if link else ""
    parts = [p for p in host.split(".") if p and p not in _HOST_NOISE]
    if parts:
        return parts[-1].capitalize()
    return fallback or "Unknown source"
