"""Security headers on every response, the Host check, and CSRF protection for the few POSTs.

The Host check answers only to the configured host names (``ENGFEED_ALLOWED_HOSTS``): a
page loaded through an attacker's DNS name that rebinds to 127.0.0.1 gets a 421 and never
sees a page, a cookie or a CSRF token.

CSRF uses the signed double-submit pattern: the browser holds a random nonce in an
``HttpOnly; SameSite=Strict`` cookie, every form carries ``HMAC(secret, nonce)`` in a hidden
field, and a POST is accepted only when the field matches the cookie's signature. An
attacker can neither read the cookie nor compute the signature without the server's
secret. A cross-origin ``Origin`` header is refused outright as a second line.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    # same-origin keeps the Origin header on our own POSTs; other sites learn nothing.
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)
CSRF_COOKIE = "engfeed_csrf"
CSRF_FIELD = "csrf_token"


class SecurityHeadersMiddleware:
    """Pure ASGI (no per-request task hop): adds the headers unless a route set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name not in headers:
                        headers[name] = value
                if is_static and "cache-control" not in headers:
                    headers["cache-control"] = "public, max-age=86400"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AllowedHostsMiddleware:
    """Refuses (421 Misdirected Request, plain text) a request whose ``Host`` is not allowed.

    Entries are host names without a port: ``example.com``, ``[::1]``, ``*.example.com``
    (the domain and its subdomains) or ``*`` (anything). Pure ASGI, like the headers.
    """

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = tuple(dict.fromkeys(h.strip().lower() for h in allowed if h.strip()))
        self.any = "*" in self.allowed
        self.exact = frozenset(h for h in self.allowed if not h.startswith("*"))
        self.suffixes = tuple(h[1:] for h in self.allowed if h.startswith("*."))

    def permits(self, host_header: str) -> bool:
        if self.any:
            return True
        host = host_name(host_header)
        if not host:
            return False
        return host in self.exact or any(
            host.endswith(suffix) or host == suffix[1:] for suffix in self.suffixes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if self.permits(host):
            await self.app(scope, receive, send)
            return
        shown = "".join(ch for ch in host[:100] if ch.isprintable()) or "(none)"
        message = (
            f"Misdirected request: this Engineering Feed server does not answer to the host name "
            f"{shown!r}. It answers to: {', '.join(self.allowed)}. To reach it under another name "
            "(a reverse proxy, another machine), add that name to ENGFEED_ALLOWED_HOSTS "
            "(comma-separated).\n"
        )
        response = PlainTextResponse(message, status_code=421)
        await response(scope, receive, send)


def host_name(host_header: str) -> str:
    """The host name of a ``Host`` header, lower-cased, without the port (IPv6 keeps its
    brackets); ``""`` when the header is malformed."""
    value = host_header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return ""
        rest = value[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return ""
        return value[: end + 1]
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return ""
    if not name or any(ch in name for ch in "/\\@ \t"):
        return ""
    return name.rstrip(".")


class Csrf:
    """Issue and check double-submit tokens signed with ``secret``."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or secrets.token_bytes(32)

    def sign(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def nonce_for(self, request: Request) -> tuple[str, bool]:
        """The request's cookie nonce, or a fresh one; the flag says it must be set."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if 20 <= len(current) <= 100 and current.isascii():
            return current, False
        return secrets.token_urlsafe(32), True

    def valid(self, request: Request, token: object) -> bool:
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not nonce or not isinstance(token, str) or not token:
            return False
        if not same_origin(request):
            return False
        return hmac.compare_digest(self.sign(nonce), token)


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # non-browser clients, older browsers: the token alone decides
    if origin == "null":
        return False
    host = request.headers.get("host", "")
    try:
        return urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:
        return False
