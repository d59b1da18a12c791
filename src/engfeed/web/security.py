"""Security headers on every response, and CSRF protection for the few POSTs.

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
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
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
