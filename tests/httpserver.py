"""A scripted local HTTP server for tests: nothing ever leaves 127.0.0.1.

Use the ``http_server`` fixture (register it with ``pytest_plugins = ["httpserver"]`` in
``tests/conftest.py``), or wrap :func:`running_server` in a fixture of your own::

    def test_something(http_server):
        url = http_server.route("/feed.xml", body=b"<rss/>", headers={"Content-Type": "application/rss+xml"})
        http_server.route("/old", Response(status=301, headers={"Location": "/feed.xml"}))

Routes are exact paths (the query string is tried first, then the bare path). A route is a
:class:`Response` (static body, status, headers, validators, delays, drip, endless, gzip) or
a callable taking the request handler, for anything odd (raw bytes, broken framing).

The server records every request (:attr:`LocalHTTPServer.requests`) and the largest number
of requests handled at once (:attr:`LocalHTTPServer.max_in_flight`). It runs in a daemon
thread, handler threads are daemons with short socket timeouts, and every slow or endless
response stops as soon as the client goes away or the server is stopped, so a test's
teardown never hangs.
"""

from __future__ import annotations

import gzip as gzip_module
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass
class Response:
    """A scripted response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # sent as ETag; a matching If-None-Match gets a 304
    last_modified: str | None = None  # sent as Last-Modified; an equal If-Modified-Since gets a 304
    delay: float = 0.0  # seconds before the status line is sent
    drip: float | None = None  # send the body one byte at a time, this many seconds apart
    endless: bool = False  # send ``body`` (or filler) again and again until the client leaves
    gzip: bool = False  # gzip the body and say Content-Encoding: gzip
    content_length: bool = True  # send Content-Length (never for drip or endless bodies)


def redirect(to: str, status: int = 301) -> Response:
    return Response(status=status, headers={"Location": to})


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names


Handler = Callable[["RequestHandler"], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    owner: LocalHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are routine here; keep the test output clean."""


class RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # the connection closes after each response
    timeout = 5  # socket timeout: a silent client never pins a thread for long

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def do_HEAD(self) -> None:
        self.server.owner._handle(self)

    def do_POST(self) -> None:
        self.server.owner._handle(self)


class LocalHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1 with scripted routes."""

    def __init__(self) -> None:
        self.routes: dict[str, Response | Handler] = {}
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self.in_flight = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), RequestHandler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=2)

    # -- scripting

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + path

    def route(self, path: str, response: Response | Handler | None = None, **kwargs: Any) -> str:
        """Script ``path`` (``Response(**kwargs)`` when no response is given); returns its URL."""
        self.routes[path] = response if response is not None else Response(**kwargs)
        return self.url(path)

    def redirect(self, path: str, to: str, status: int = 301) -> str:
        return self.route(path, redirect(to, status))

    def requests_for(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- serving

    def _handle(self, handler: RequestHandler) -> None:
        record = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
        )
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        counted = True

        def done() -> None:
            # Called before the response is written, so a client that starts its next
            # request as soon as it has read this response is never counted twice.
            nonlocal counted
            if counted:
                counted = False
                with self._lock:
                    self.in_flight -= 1

        try:
            route = self.routes.get(handler.path) or self.routes.get(handler.path.split("?", 1)[0])
            if route is None:
                done()
                self._send_static(handler, Response(status=404, body=b"not found"))
            elif isinstance(route, Response):
                self._serve(handler, route, done)
            else:
                done()
                route(handler)
        except (OSError, ValueError):
            pass  # the client went away (or the server is stopping)
        finally:
            done()

    def _serve(self, handler: RequestHandler, resp: Response, done: Callable[[], None]) -> None:
        if resp.delay and self.stopping.wait(resp.delay):
            return
        done()
        headers = dict(resp.headers)
        if resp.etag is not None:
            headers["ETag"] = resp.etag
        if resp.last_modified is not None:
            headers["Last-Modified"] = resp.last_modified
        inm = handler.headers.get("If-None-Match")
        ims = handler.headers.get("If-Modified-Since")
        if (resp.etag is not None and inm == resp.etag) or (
            resp.last_modified is not None and ims == resp.last_modified and inm is None
        ):
            self._send_static(handler, Response(status=304, headers=headers))
            return
        body = resp.body
        if resp.gzip:
            body = gzip_module.compress(body)
            headers["Content-Encoding"] = "gzip"
        if resp.drip is not None or resp.endless:
            handler.send_response(resp.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.flush()
            if resp.drip is not None:
                self._drip(handler, body, resp.drip)
            else:
                self._endless(handler, body or b"x" * 65536)
            return
        self._send_static(
            handler, Response(status=resp.status, body=body, headers=headers), resp.content_length
        )

    def _send_static(self, handler: RequestHandler, resp: Response, content_length: bool = True) -> None:
        handler.send_response(resp.status)
        for name, value in resp.headers.items():
            handler.send_header(name, value)
        if content_length and resp.status != 304:
            handler.send_header("Content-Length", str(len(resp.body)))
        handler.end_headers()
        if handler.command != "HEAD" and resp.status != 304:
            handler.wfile.write(resp.body)
        handler.wfile.flush()

    def _drip(self, handler: RequestHandler, body: bytes, every: float) -> None:
        for i in range(len(body)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            if self.stopping.wait(every):
                return

    def _endless(self, handler: RequestHandler, chunk: bytes) -> None:
        while not self.stopping.is_set():
            handler.wfile.write(chunk)


@contextmanager
def running_server(monkeypatch: pytest.MonkeyPatch | None = None) -> Iterator[LocalHTTPServer]:
    """A started :class:`LocalHTTPServer`, stopped on exit.

    With ``monkeypatch``, proxy variables are cleared first so 127.0.0.1 is reached directly.
    """
    if monkeypatch is not None:
        for name in PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
    server = LocalHTTPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    """A fresh local server per test (see the module docstring)."""
    with running_server(monkeypatch) as server:
        yield server


def unused_port() -> int:
    """A local port nothing listens on (connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def http_date(timestamp: float | None = None) -> str:
    """An IMF-fixdate, as HTTP headers want it."""
    from email.utils import formatdate

    return formatdate(time.time() if timestamp is None else timestamp, usegmt=True)


# -- guards for tests that name other addresses (resolved by a fake, never connected to) -----
@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail (and record) any connection attempt to an address other than 127.0.0.1/::1."""
    import httpcore

    attempts: list[str] = []
    real = httpcore.AnyIOBackend.connect_tcp

    async def guarded(self, host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in ("127.0.0.1", "::1"):
            attempts.append(host)
            raise AssertionError(f"a connection to {host} was attempted")
        return await real(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", guarded)
    yield attempts
    assert attempts == []


def fake_resolver(table: dict[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    """A resolver for FetchConfig(resolver=...): IP literals resolve to themselves, names
    through ``table``, anything else to 127.0.0.1."""
    import ipaddress

    async def resolve(host: str, port: int) -> Sequence[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            return table.get(host, ["127.0.0.1"])

    return resolve
