"""URL canonicalisation and article identity.

Pure functions, no I/O. Three layers:

* :func:`canonical_url` is the URL we store and link to: the same resource always gets the
  same string (case of scheme and host, default ports, percent-encoding, dot segments,
  fragments and click-tracking parameters no longer matter), but it is still a working URL.
* :func:`dedup_key` is coarser: it also forgets the scheme, a leading ``www.`` and a trailing
  slash, and maps every Medium post to its post id, so one article reached through
  ``medium.com/<publication>/...``, ``<custom-domain>/...`` and ``medium.com/p/<id>``
  collapses to a single key.
* :func:`article_uid` turns a key into the short stable public id of an article.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from urllib.parse import unquote_plus, urljoin, urlsplit

__all__ = ["article_uid", "canonical_url", "dedup_key", "redact_credentials"]

DEFAULT_PORTS = {"http": "80", "https": "443", "ftp": "21"}

# Query parameters that only track the click, never select content.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "mc_cid",
        "mc_eid",
        "ref_src",
        "ref_url",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "igshid",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wickedid",
        "_ga",
        "_gl",
    }
)
TRACKING_PREFIXES = ("utm_",)
# Medium appends ``?source=rss----<publication id>---4`` (and similar ``rss-<user id>------2``)
# to feed links, and ``?gi=<hex>`` to links on custom domains. Other ``source=`` values are
# left alone: on some sites they select content.
_MEDIUM_SOURCE = re.compile(r"rss(?:-|$)", re.IGNORECASE)
_MEDIUM_GI = re.compile(r"[0-9a-f]{8,16}")

# RFC 3986 character classes.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = "!$&'()*+,;="
_PATH_SAFE = frozenset(_UNRESERVED | set(_SUB_DELIMS) | set(":@/"))
_QUERY_SAFE = frozenset(_PATH_SAFE | {"?"})
_HEX = "0123456789abcdefABCDEF"
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_ALREADY_NORMAL = {
    _PATH_SAFE: re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*"),
    _QUERY_SAFE: re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*"),
}
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")

# A Medium post id: the last path segment ends in "-" + 10 to 12 lowercase hex digits
# (``/re-architecting-the-video-gatekeeper-f7b0ac2f6b00``); the short form is ``/p/<id>``.
_MEDIUM_SLUG = re.compile(r"^.+-([0-9a-f]{10,12})$")
_MEDIUM_SHORT = re.compile(r"^[0-9a-f]{10,12}$")
_UUID_TAIL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def canonical_url(url: str, base: str | None = None) -> str:
    """The canonical form of ``url`` (resolved against ``base`` when relative).

    Lower-cases scheme and host, drops the default port, the fragment and tracking
    parameters (``utm_*``, ``fbclid``, Medium's ``source=rss...``, ...), keeps every other
    query parameter in its original order, removes ``.``/``..`` segments, normalises
    percent-encoding (unreserved characters decoded, other escapes upper-cased, unsafe
    characters and non-ASCII encoded as UTF-8) and writes an empty path as ``/``.
    The scheme is kept: ``http`` and ``https`` URLs stay distinct here.

    Never raises: text that is not a URL with a host (``mailto:``, a bare path without a
    usable base, garbage) comes back stripped of surrounding whitespace only.
    """
    text = url.strip()
    if base and not _ABSOLUTE.match(text):
        with contextlib.suppress(ValueError):  # a malformed base: keep the URL as it is
            text = urljoin(base.strip(), text)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    scheme, netloc = parts.scheme, parts.netloc
    if not scheme or not netloc:
        return text
    netloc = _normalize_netloc(scheme, netloc)
    path = _remove_dot_segments(_normalize_escapes(parts.path, _PATH_SAFE)) or "/"
    query = _clean_query(parts.query)
    return f"{scheme}://{netloc}{path}?{query}" if query else f"{scheme}://{netloc}{path}"


def dedup_key(url: str) -> str:
    """The key under which two URLs of the same article collapse.

    The canonical URL without scheme, leading ``www.`` and trailing slash; Medium posts
    (on medium.com, on ``*.medium.com`` and on custom domains) become ``medium:<post id>``.
    """
    canon = canonical_url(url)
    try:
        parts = urlsplit(canon)
    except ValueError:
        return canon
    if not parts.netloc:
        return canon
    host = parts.netloc.rpartition("@")[2]
    host = host.removeprefix("www.")
    medium_id = _medium_post_id(host, parts.path)
    if medium_id:
        return f"medium:{medium_id}"
    path = parts.path.rstrip("/")
    return f"{host}{path}?{parts.query}" if parts.query else f"{host}{path}"


def article_uid(key: str) -> str:
    """A short stable id for a dedup key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _normalize_netloc(scheme: str, netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal: [::1]:8080
        end = hostport.find("]")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        port = rest[1:] if rest.startswith(":") else None
        if port is None and rest:  # something odd after the bracket: leave it be
            return f"{userinfo}{at}{hostport.lower()}"
    else:
        host, colon, port_text = hostport.rpartition(":")
        if colon and (port_text.isdigit() or not port_text) and port_text.isascii():
            port = port_text
        else:
            host, port = hostport, None
    host = _normalize_host(host)
    if port is not None:
        port = port.lstrip("0") or ("0" if port else "")
        if port in ("", DEFAULT_PORTS.get(scheme)):
            port = None
    hostport = f"{host}:{port}" if port is not None else host
    return f"{userinfo}{at}{hostport}"


def _normalize_host(host: str) -> str:
    host = host.lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return host


def _normalize_escapes(component: str, safe: frozenset[str]) -> str:
    """Percent-encoding normal form of one URL component (idempotent)."""
    if _ALREADY_NORMAL[safe].fullmatch(component):
        return component  # fast path: the common case needs no work
    out: list[str] = []
    i, n = 0, len(component)
    while i < n:
        ch = component[i]
        if ch == "%" and i + 2 < n and component[i + 1] in _HEX and component[i + 2] in _HEX:
            decoded = chr(int(component[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + component[i + 1 : i + 3].upper())
            i += 3
            continue
        if ch in safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, keeping a trailing slash and empty segments."""
    if "." not in path:
        return path
    segments = path.split("/")
    if not any(seg in (".", "..") for seg in segments):
        return path
    out: list[str] = []
    for seg in segments[1:] if path.startswith("/") else segments:
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    if segments[-1] in (".", ".."):
        out.append("")  # "/a/b/.." means the directory "/a/"
    result = "/".join(out)
    return "/" + result if path.startswith("/") else result


def _clean_query(query: str) -> str:
    if not query:
        return ""
    kept: list[str] = []
    for param in query.split("&"):
        if not param:
            continue
        name, _, value = param.partition("=")
        try:
            key = unquote_plus(name).strip().lower()
        except ValueError:  # pragma: no cover - unquote_plus is lenient
            key = name.lower()
        if key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES):
            continue
        if key == "source" and _MEDIUM_SOURCE.match(value):
            continue
        if key == "gi" and _MEDIUM_GI.fullmatch(value):
            continue
        kept.append(_normalize_escapes(param, _QUERY_SAFE))
    return "&".join(kept)


def _medium_post_id(host: str, path: str) -> str | None:
    segments = [seg for seg in path.split("/") if seg]
    if not segments or len(segments) > 2:
        return None
    on_medium = host == "medium.com" or host.endswith(".medium.com")
    last = segments[-1]
    if on_medium and len(segments) == 2 and segments[0] == "p" and _MEDIUM_SHORT.match(last):
        return last
    match = _MEDIUM_SLUG.match(last)
    if match is None or _UUID_TAIL.search(last):
        return None
    post_id = match.group(1)
    # Off medium.com, insist on a letter: an all-digit suffix is far more likely a site's
    # own numeric id (or a timestamp) than one of the rare all-digit Medium ids.
    if not on_medium and post_id.isdigit():
        return None
    return post_id


# "scheme://user:password@": the password part, wherever a URL appears in a text.
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/?#@\s:]*:)[^/?#\s]*@")


def redact_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL in it shown as
    ``***``: URLs with credentials are stored (the fetcher needs them) but never shown."""
    if "@" not in text:
        return text
    return _CREDENTIALS.sub(r"\1***@", text)
