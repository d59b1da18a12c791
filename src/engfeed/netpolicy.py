"""Which addresses the fetcher may connect to: the guard against server-side request forgery.

A feed URL is untrusted input: it, any redirect it answers with, and any feed link a page
announces could point at the machine's own services or a cloud metadata endpoint. So every
TCP connection the fetcher opens goes through :class:`GuardedBackend`, which resolves the
host name itself, checks *every* address it resolves to, and then connects to one of those
checked addresses (never resolving again, so DNS rebinding between check and connect is not
possible). Redirect hops and discovered feed links are new connections and pass the same
check; numeric spellings of an address (``0x7f.1``, ``2130706433``, ``127.1``) are caught
because the check runs on what the resolver returns. A refusal happens before any packet
is sent to the address.

Always refused: link-local (``169.254.0.0/16``, ``fe80::/10``; cloud metadata services live
there), unspecified (``0.0.0.0``, ``::``), multicast, broadcast and reserved addresses, and
the well-known metadata host names. Refused unless private addresses are allowed
(``ENGFEED_FETCH_PRIVATE``, default on for the single-user app): loopback and every other
non-global range (RFC 1918, ``fc00::/7``, CGNAT ``100.64.0.0/10``, documentation ranges).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import anyio
import httpcore

from engfeed.errors import EngfeedError

#: Resolves (host, port) to IP address strings; the default asks the system resolver.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

#: Host names of cloud instance-metadata services (they also answer on link-local addresses).
METADATA_HOSTS: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
ALWAYS_REFUSED: Final = frozenset({"link-local", "unspecified", "multicast", "reserved"})
PRIVATE_KINDS: Final = frozenset({"loopback", "private"})
PRIVATE_SETTING: Final = "ENGFEED_FETCH_PRIVATE"


class AddressRefused(EngfeedError):
    """A connection the policy does not allow; ``str()`` is the one-line reason.

    ``describe(url)`` words it for the URL being fetched, the way a refusal is reported.
    """

    def __init__(self, host: str, address: str | None, kind: str) -> None:
        self.host, self.address, self.kind = host, address, kind
        super().__init__(self.describe(host))

    def describe(self, url: str) -> str:
        if self.address is None:
            return f"refused: {url} is a cloud metadata service"
        article = "an" if self.kind[0] in "aeiou" else "a"
        reason = f"refused: {url} resolves to {self.address}, {article} {self.kind} address"
        if self.kind in PRIVATE_KINDS:
            return f"{reason}; set {PRIVATE_SETTING}=1 to allow local feeds"
        if self.kind == "link-local":
            return f"{reason} (where cloud metadata services answer); never fetched"
        return f"{reason}; never fetched"


def address_kind(address: str) -> str | None:
    """The kind of a non-public address (``"loopback"``, ``"link-local"``, ...), or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return "reserved"  # not an address at all: never connect to it
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "unspecified"  # Linux connects 0.0.0.0 to the machine itself
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if isinstance(ip, ipaddress.IPv4Address) and (ip.is_reserved or ip == _BROADCAST):
        return "reserved"
    if ip.is_private or not ip.is_global:
        return "private"
    return None


_BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")
_THIS_NETWORK: Final = ipaddress.IPv4Network("0.0.0.0/8")


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which resolved addresses may be connected to (see the module docstring)."""

    allow_private: bool = True
    resolver: Resolver | None = None  # a test's fake; None asks the system

    def refusal(self, host: str, address: str) -> AddressRefused | None:
        kind = address_kind(address)
        if kind is None or (kind in PRIVATE_KINDS and self.allow_private):
            return None
        return AddressRefused(host, address, kind)

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host`` if all of them are allowed, else :class:`AddressRefused`.

        A host resolving to one refused address among allowed ones is refused as a whole:
        that is what a rebinding or split-horizon trick looks like.
        """
        name = host.strip("[]").rstrip(".").lower()
        if name in METADATA_HOSTS:
            raise AddressRefused(host, None, "metadata")
        resolver = self.resolver or _system_resolve
        addresses = _unique(await resolver(name, port))
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            refused = self.refusal(host, address)
            if refused is not None:
                raise refused
        return addresses


async def _system_resolve(host: str, port: int) -> list[str]:
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


def _unique(addresses: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(addresses))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking every address before connecting.

    Resolution counts against the connect timeout. Each allowed address is tried in turn.
    """

    def __init__(self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self.policy.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        options = list(socket_options or ())
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
