"""Short display names for sources: "Meta", not "Engineering at Meta"."""

from __future__ import annotations

import ipaddress
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

# Second-level labels under a country code that name no company (co.uk, com.au, ac.jp, ...).
_SECOND_LEVEL = {"co", "com", "ac", "org", "net", "gov", "edu", "ne", "or", "go", "gv"}


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
    return _host_name(link) or fallback or "Unknown source"


def _host_name(link: str) -> str:
    """The company in a URL's host: ``engineering.acme.co.uk`` -> "Acme"; an IP address as
    it is, with its port (two local feeds must not share a name)."""
    try:
        parts = urlsplit(link)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{port}" if port else shown
    labels = [p for p in host.split(".") if p]
    if len(labels) >= 2:
        tld = labels.pop()
        if len(labels) >= 2 and len(tld) == 2 and labels[-1] in _SECOND_LEVEL:  # acme.co.uk
            labels.pop()
    named = [p for p in labels if p not in _HOST_NOISE]
    return named[-1].capitalize() if named else ""
