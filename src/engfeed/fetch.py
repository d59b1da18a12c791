"""Fetching feeds over HTTP: the one place the reader talks to the network.

Every source is fetched with the same polite, bounded behaviour:

* a global concurrency limit plus at most ``per_host`` requests in flight per host name
  (counted per request, so a redirect to another host takes a slot on that host);
* connect and read timeouts, and a hard per-source budget (``total_timeout``) covering
  every redirect hop and the whole body, so a server dripping one byte a second ends;
* the body is streamed and cut at ``max_bytes`` of *decoded* data: ``Content-Encoding``
  (gzip, deflate) is undone here, in bounded steps, so a gzip bomb never inflates past the cap;
* redirects are followed by hand (hop limit, loop detection, relative ``Location``), and a
  chain made only of permanent redirects (301/308) is reported so the caller can update
  the stored URL;
* conditional GET from the stored validators (``ETag``/``Last-Modified``);
* ``Retry-After`` on 429/503 is parsed for the scheduler (see :func:`next_due`).

Nothing a network or a server does raises out of :func:`fetch_one` or :func:`fetch_all`:
every outcome is a :class:`FetchResult`, with ``error`` set to a one-line message on failure.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import math
import random
import re
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from engfeed import __version__
from engfeed.models import Source
from engfeed.netpolicy import AddressPolicy, AddressRefused, GuardedBackend, Resolver
from engfeed.text import terminal_safe
from engfeed.urls import redact_credentials

USER_AGENT = f"EngineeringFeed/{__version__} (+https://github.com/engfeed/engfeed; feed reader)"
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
ACCEPT_ENCODING = "gzip, deflate"  # only what we decode ourselves, in bounded steps

MAX_RETRY_AFTER = 24 * 3600.0  # seconds; a longer Retry-After is capped to this
MAX_BACKOFF = timedelta(hours=24)  # cap of the exponential backoff (before jitter)
MIN_DELAY = timedelta(seconds=1)  # next_due is always strictly after now
JITTER = 0.2  # backoff delays are spread by +/-20%

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})

_PIECE = 64 * 1024  # largest block the decompressor may produce at once
# Headers describing the bytes on the wire, not the decoded body handed to the parser.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class FetchConfig:
    """Limits of one fetch run; the defaults suit a few hundred blogs."""

    concurrency: int = 16  # global limit of requests in flight
    per_host: int = 2  # max requests in flight per host name
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # longest silence while waiting for headers or body bytes
    total_timeout: float = 45.0  # per-source budget, hard cap including redirects and body
    max_bytes: int = 10 * 1024 * 1024  # of decoded body
    max_redirects: int = 5
    #: Past ``max_bytes``: keep the first ``max_bytes`` and stop reading (robots.txt, of which
    #: RFC 9309 has crawlers parse the first 500 KiB) instead of failing the fetch.
    truncate: bool = False
    user_agent: str = USER_AGENT
    accept: str = ACCEPT  # feeds by default; article pages ask for HTML (engfeed.fulltext)
    #: Loopback and private-range addresses may be fetched (``ENGFEED_FETCH_PRIVATE``);
    #: link-local, metadata and other special addresses never are (see engfeed.netpolicy).
    allow_private: bool = True
    resolver: Resolver | None = None  # tests only: a fake resolver; None asks the system

    @property
    def policy(self) -> AddressPolicy:
        return AddressPolicy(allow_private=self.allow_private, resolver=self.resolver)


DEFAULT_CONFIG = FetchConfig()


@dataclass(frozen=True)
class FetchResult:
    """What fetching one source gave.

    ``headers`` are the final response's headers with lower-cased names, minus the ones that
    describe the wire encoding (``content-encoding``, ``content-length``,
    ``transfer-encoding``): ``body`` is already decoded.

    ``etag``/``last_modified`` are the validators to store for the next conditional GET:
    the response's on a 200 (``None`` when the server sent none), the response's or else the
    source's on a 304, and the source's unchanged on any error, so storing them is always safe.

    ``permanent_url`` is set only on success (2xx or 304) reached through one or more
    redirects that were all permanent (301/308): the caller should store it as the new URL.
    """

    source: Source
    status: int | None  # final HTTP status, None when no response arrived
    body: bytes | None  # None on 304 or error
    headers: dict[str, str]
    final_url: str
    permanent_url: str | None
    etag: str | None
    last_modified: str | None
    not_modified: bool
    error: str | None  # one-line, human readable
    retry_after: float | None  # seconds, from Retry-After on 429/503

    @property
    def ok(self) -> bool:
        """True when the source answered with a body or "not modified"."""
        return self.error is None


class _Failure(Exception):
    """Internal: ends a fetch with this one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- limits


class _Limiter:
    """Global and per-host slots, shared by every fetch made with one client."""

    def __init__(self, concurrency: int, per_host: int) -> None:
        self._global = asyncio.Semaphore(max(1, concurrency))
        self._per_host = max(1, per_host)
        self._hosts: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def slot(self, host: str, deadline: float) -> AsyncIterator[float]:
        """Hold a slot on ``host`` and a global one; yields the seconds spent waiting for the
        global slot. Waiting for the host slot past ``deadline`` fails the fetch.

        The host slot is taken first so that requests queued behind a busy host do not sit
        on global slots that requests to other hosts could use.
        """
        host_slot = self._hosts.get(host)
        if host_slot is None:
            host_slot = self._hosts[host] = asyncio.Semaphore(self._per_host)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                await host_slot.acquire()
        except TimeoutError:
            raise _Failure(f"timed out waiting behind other requests to {host}") from None
        try:
            started = loop.time()
            await self._global.acquire()
            try:
                yield loop.time() - started
            finally:
                self._global.release()
        finally:
            host_slot.release()


_LIMITERS: weakref.WeakKeyDictionary[httpx.AsyncClient, _Limiter] = weakref.WeakKeyDictionary()


def _limiter_for(client: httpx.AsyncClient, config: FetchConfig) -> _Limiter:
    limiter = _LIMITERS.get(client)
    if limiter is None:
        limiter = _LIMITERS[client] = _Limiter(config.concurrency, config.per_host)
    return limiter


def make_client(config: FetchConfig = DEFAULT_CONFIG) -> httpx.AsyncClient:
    """An AsyncClient set up for fetching feeds (use it as ``async with``).

    Every fetch made through one client shares the same global and per-host limits (taken
    from the ``config`` of the first fetch that uses it).
    """
    return httpx.AsyncClient(
        headers=_base_headers(config),
        timeout=_timeout(config),
        follow_redirects=False,
        transport=guarded_transport(config),
    )


def guarded_transport(config: FetchConfig) -> httpx.AsyncHTTPTransport:
    """httpx's transport with every connection checked by the address policy.

    httpx takes no network backend, so it is set on the transport's httpcore pool (checked
    here, and by the tests that prove a refused address gets no connection). An explicit
    transport also means environment proxies are not used: every fetch goes direct, so the
    policy sees the real destination.
    """
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=max(1, config.concurrency),
            max_keepalive_connections=max(1, config.concurrency),
        ),
    )
    pool = transport._pool
    if not hasattr(pool, "_network_backend"):  # pragma: no cover - a changed httpcore
        raise RuntimeError("httpcore's connection pool changed: cannot apply the address policy")
    pool._network_backend = GuardedBackend(config.policy)
    return transport


def _timeout(config: FetchConfig) -> httpx.Timeout:
    return httpx.Timeout(config.read_timeout, connect=config.connect_timeout)


def _base_headers(config: FetchConfig) -> dict[str, str]:
    return {"User-Agent": config.user_agent, "Accept": config.accept, "Accept-Encoding": ACCEPT_ENCODING}


# --------------------------------------------------------------------------- fetching


async def fetch_all(
    sources: Sequence[Source],
    config: FetchConfig = DEFAULT_CONFIG,
    on_result: Callable[[FetchResult], None] | None = None,
) -> list[FetchResult]:
    """Fetch every source concurrently (within the limits); results come back in input order.

    ``on_result`` is called with each result as soon as it is ready (in completion order),
    from the running event loop; an exception it raises cancels the remaining fetches and
    propagates. No source can make this raise.
    """
    if not sources:
        return []
    results: list[FetchResult | None] = [None] * len(sources)
    async with make_client(config) as client:

        async def run(index: int, source: Source) -> tuple[int, FetchResult]:
            return index, await fetch_one(client, source, config)

        tasks = [asyncio.create_task(run(i, s)) for i, s in enumerate(sources)]
        try:
            for done in asyncio.as_completed(tasks):
                index, result = await done
                results[index] = result
                if on_result is not None:
                    on_result(result)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return [r for r in results if r is not None]


async def fetch_one(client: httpx.AsyncClient, source: Source, config: FetchConfig) -> FetchResult:
    """Fetch one source; never raises for anything the network or the server does."""
    state = _State(url=source.url.strip())
    try:
        return await _fetch(client, source, config, state)
    except _Failure as exc:
        message = exc.message
    except AddressRefused as exc:
        message = exc.describe(state.url)
    except TimeoutError:
        message = f"timed out after {config.total_timeout:g}s"
    except httpx.ConnectTimeout:
        message = f"connect timed out after {config.connect_timeout:g}s"
    except httpx.ReadTimeout:
        message = f"read timed out after {config.read_timeout:g}s"
    except httpx.TimeoutException as exc:
        message = f"timed out ({_describe(exc)})"
    except httpx.ConnectError as exc:
        message = f"connection failed: {_describe(exc)}"
    except httpx.RemoteProtocolError as exc:
        message = f"protocol error: {_describe(exc)}"
    except httpx.TransportError as exc:
        message = f"network error: {_describe(exc)}"
    except httpx.InvalidURL as exc:
        message = f"invalid URL: {_describe(exc)}"
    except Exception as exc:  # the contract: nothing escapes, whatever a server does
        message = f"unexpected error: {type(exc).__name__}: {_describe(exc)}"
    return FetchResult(
        source=source,
        status=state.status,
        body=None,
        headers=state.headers,
        final_url=state.url,
        permanent_url=None,
        etag=source.etag,
        last_modified=source.last_modified,
        not_modified=False,
        error=_one_line(message),
        retry_after=None,
    )


@dataclass
class _State:
    """Where a fetch got to, so an error result can say it."""

    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Redirect:
    location: str


@dataclass(frozen=True)
class _Final:
    body: bytes | None = None
    not_modified: bool = False
    error: str | None = None
    retry_after: float | None = None


async def _fetch(
    client: httpx.AsyncClient, source: Source, config: FetchConfig, state: _State
) -> FetchResult:
    limiter = _limiter_for(client, config)
    url = _check_url(state.url, what="URL")
    headers = _base_headers(config)
    if source.etag and _sendable(source.etag):
        headers["If-None-Match"] = source.etag
    if source.last_modified and _sendable(source.last_modified):
        headers["If-Modified-Since"] = source.last_modified
    timeout = _timeout(config)
    loop = asyncio.get_running_loop()
    # The budget covers waiting for a slot on the host (six slow feeds on one host end
    # within one budget, not six), not the wait for a global slot, which only says how many
    # other sources are in this run.
    deadline = loop.time() + config.total_timeout
    seen = {str(url)}
    redirects = 0
    all_permanent = True

    while True:
        state.url, state.status, state.headers = str(url), None, {}
        async with limiter.slot(url.host, deadline) as global_wait:
            deadline += global_wait
            async with asyncio.timeout_at(deadline):
                outcome = await _exchange(client, url, headers, timeout, config, state)
        if isinstance(outcome, _Final):
            return _result(source, state, outcome, permanent=bool(redirects) and all_permanent)
        redirects += 1
        if redirects > config.max_redirects:
            raise _Failure(f"too many redirects (more than {config.max_redirects})")
        all_permanent = all_permanent and state.status in PERMANENT_REDIRECTS
        try:
            target = url.join(outcome.location).copy_with(fragment=None)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise _Failure(f"bad redirect Location {outcome.location!r}") from exc
        url = _check_url(str(target), what="redirect to")
        if str(url) in seen:
            raise _Failure(f"redirect loop at {url}")
        seen.add(str(url))


def _result(source: Source, state: _State, outcome: _Final, *, permanent: bool) -> FetchResult:
    if outcome.error is None and outcome.not_modified:
        etag = state.headers.get("etag") or source.etag
        last_modified = state.headers.get("last-modified") or source.last_modified
    elif outcome.error is None:
        etag = state.headers.get("etag")
        last_modified = state.headers.get("last-modified")
    else:
        etag, last_modified = source.etag, source.last_modified
    return FetchResult(
        source=source,
        status=state.status,
        body=outcome.body,
        headers=state.headers,
        final_url=state.url,
        permanent_url=state.url if permanent and outcome.error is None else None,
        etag=etag,
        last_modified=last_modified,
        not_modified=outcome.not_modified,
        error=outcome.error,
        retry_after=outcome.retry_after,
    )


async def _exchange(
    client: httpx.AsyncClient,
    url: httpx.URL,
    headers: dict[str, str],
    timeout: httpx.Timeout,
    config: FetchConfig,
    state: _State,
) -> _Redirect | _Final:
    """One request/response; reads the body only of a 2xx."""
    async with client.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=False) as resp:
        status = resp.status_code
        state.status = status
        state.headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() not in _WIRE_HEADERS}
        if status in REDIRECT_STATUSES:
            location = (resp.headers.get("location") or "").strip()
            if not location:
                raise _Failure(f"HTTP {status} redirect without a Location")
            return _Redirect(location)
        if status == 304:
            return _Final(not_modified=True)
        if 200 <= status < 300:
            return _Final(body=await _read_body(resp, config.max_bytes, truncate=config.truncate))
        retry_after = None
        if status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
        return _Final(error=_status_message(status, resp.reason_phrase), retry_after=retry_after)


async def _read_body(resp: httpx.Response, cap: int, *, truncate: bool = False) -> bytes:
    """The decoded body, or _Failure as soon as it (or its encoded form) passes ``cap`` bytes
    (``truncate``: its first ``cap`` bytes, read no further)."""
    too_big = f"body larger than {_human_bytes(cap)}"
    decoder = _Decoder(resp.headers.get("content-encoding", ""))
    declared = resp.headers.get("content-length", "").strip()
    if not truncate and not decoder.stages and declared.isdigit() and int(declared) > cap:
        raise _Failure(too_big)
    body = bytearray()
    received = 0
    async for chunk in resp.aiter_raw():
        received += len(chunk)
        if received > cap and not truncate:
            raise _Failure(too_big)
        for piece in decoder.decode(chunk):
            if len(body) + len(piece) > cap:
                if truncate:
                    return _whole_lines(bytes(body + piece[: cap - len(body)]))
                raise _Failure(too_big)
            body += piece
        if received > cap:  # truncating: as much as the cap allows has been read
            return _whole_lines(bytes(body))
    for piece in decoder.flush():
        if len(body) + len(piece) > cap:
            raise _Failure(too_big)
        body += piece
    return bytes(body)


def _whole_lines(body: bytes) -> bytes:
    """A cut body without its last, partial line ("Disallow: /private" cut to "Disallow: /"
    would block a whole site)."""
    end = body.rfind(b"\n")
    return body[: end + 1] if end >= 0 else b""


# --------------------------------------------------------------------------- decoding


class _Inflate:
    """One gzip or deflate layer, decompressed in blocks of at most ``_PIECE`` bytes."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.started = False  # some input was seen
        # The first input (before any output), kept so "deflate" can restart as raw deflate.
        self.history: list[bytes] | None = [] if kind == "deflate" else None
        self.ignore_rest = False  # trailing garbage after the end of the stream
        self.obj = self._new(zlib.MAX_WBITS | 16 if kind == "gzip" else zlib.MAX_WBITS)

    @staticmethod
    def _new(wbits: int) -> zlib._Decompress:
        return zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.history is not None:
            if sum(map(len, self.history)) >= 1024:
                self.history = None  # far past the 2-byte zlib header: no restart any more
            else:
                self.history.append(data)
        while data and not self.ignore_rest:
            if self.obj.eof:
                # Several gzip members back to back are one stream; anything else after the
                # end (padding, junk) is ignored, as browsers do.
                if self.kind == "gzip" and data[:1] == b"\x1f":
                    self.obj = self._new(zlib.MAX_WBITS | 16)
                else:
                    self.ignore_rest = True
                    break
            self.started = True
            try:
                out = self.obj.decompress(data, _PIECE)
            except zlib.error as exc:
                if self.history is not None:
                    # "deflate" is meant to be zlib-wrapped, but some servers send it raw.
                    self.kind = "raw deflate"
                    self.obj = self._new(-zlib.MAX_WBITS)
                    data, self.history = b"".join(self.history), None
                    continue
                raise _Failure(f"bad {self.kind.split()[-1]} stream ({exc})") from exc
            if out:
                self.history = None
                yield out
            data = self.obj.unused_data if self.obj.eof else self.obj.unconsumed_tail

    def flush(self) -> Iterator[bytes]:
        if not self.started or self.ignore_rest:
            return
        try:
            out = self.obj.flush()
        except zlib.error as exc:
            raise _Failure(f"bad {self.kind.split()[-1]} stream ({exc})") from exc
        if not self.obj.eof:
            raise _Failure(f"bad {self.kind.split()[-1]} stream (truncated)")
        # flush() after decompress(..., max_length) loops has nothing left that matters,
        # but keep it bounded anyway.
        for start in range(0, len(out), _PIECE):
            yield out[start : start + _PIECE]


class _Decoder:
    """Undoes a Content-Encoding chain incrementally."""

    def __init__(self, header: str) -> None:
        self.stages: list[_Inflate] = []
        codings = [c.strip().lower() for c in header.split(",") if c.strip()]
        for coding in reversed(codings):  # applied in order, undone in reverse
            if coding in ("gzip", "x-gzip"):
                self.stages.append(_Inflate("gzip"))
            elif coding == "deflate":
                self.stages.append(_Inflate("deflate"))
            elif coding in ("br", "zstd", "compress", "x-compress"):
                raise _Failure(f"unsupported content-encoding {coding!r}")
            # anything else ("identity", or nonsense like "utf-8") is ignored, as httpx does

    def decode(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, data)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self.stages):
            if data:
                yield data
            return
        for piece in self.stages[index].feed(data):
            yield from self._through(index + 1, piece)

    def flush(self) -> Iterator[bytes]:
        for index, stage in enumerate(self.stages):
            for piece in stage.flush():
                yield from self._through(index + 1, piece)


# --------------------------------------------------------------------------- helpers


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date).

    Capped at :data:`MAX_RETRY_AFTER`; a date in the past gives 0; garbage gives ``None``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def next_due(
    *,
    now: datetime,
    failures: int,
    interval: timedelta,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> datetime:
    """When to fetch a source next.

    Healthy (``failures == 0``): ``now + interval``. After ``n`` consecutive failures:
    ``interval * 2**(n-1)``, capped at 24 hours (or at ``interval`` if that is longer), spread
    by +/-20% jitter so failing sources do not retry in lockstep. ``retry_after`` (seconds),
    when given, is a floor. The result is always after ``now``; sources are never disabled.
    """
    step = max(interval, MIN_DELAY)
    if failures <= 0:
        delay = step.total_seconds()
    else:
        cap = max(MAX_BACKOFF, step).total_seconds()
        base = min(step.total_seconds() * 2.0 ** min(failures - 1, 64), cap)
        spread = rng.uniform(-JITTER, JITTER) if rng is not None else random.uniform(-JITTER, JITTER)
        delay = base * (1.0 + spread)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + timedelta(seconds=delay)


def _check_url(text: str, *, what: str) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise _Failure(f"invalid {what} {text!r}") from exc
    if url.scheme not in ("http", "https"):
        scheme = url.scheme or "no scheme"
        raise _Failure(f"unsupported {what} {text!r} ({scheme}); only http and https are fetched")
    if not url.host:
        raise _Failure(f"invalid {what} {text!r} (no host)")
    return url


def _sendable(value: str) -> bool:
    """Can this stored validator go back in a request header (printable ASCII only)?"""
    return value.isascii() and value.isprintable()


def _status_message(status: int, reason: str) -> str:
    """``HTTP 404 Not Found``: the standard phrase when there is one, else the server's."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = reason
    return f"HTTP {status} {phrase}".strip()


def _human_bytes(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size} bytes"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _one_line(text: str, limit: int = 300) -> str:
    """An error message fit to store and print: one line, no control characters (a server's
    reason phrase reaches terminals), no password from a URL, at most ``limit`` characters."""
    line = " ".join(redact_credentials(terminal_safe(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
