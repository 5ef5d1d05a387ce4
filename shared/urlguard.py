"""SSRF guard for every outbound URL the gateway fetches or calls (audio downloads, callbacks).

:func:`check_url` decides whether one URL may be requested: scheme http/https, an optional exact
host allow-list, and every address the host resolves to must be public. :func:`guarded_stream`
performs a request and follows redirects by hand, checking each hop; :func:`redirect_guard_hook`
is an httpx ``request`` event hook for clients that let httpx follow redirects (httpx calls request
hooks once per hop).

DNS-rebinding caveat: the host is resolved here and again by httpx when it connects. A hostile DNS
server answering a public address to the check and a private one to the connection (TTL 0) can
slip through. Defences in depth: keep ``allowed_hosts`` set for audio downloads (the WhatsApp
media host), run the functions on a VPC egress without routes to internal ranges, and block the
metadata server at the network level where possible.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared.errors import UnsafeURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Maps a host name to the IP addresses (as text) it resolves to.
Resolver = Callable[[str], Iterable[str]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_MAX_REDIRECTS = 5

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def system_resolver(host: str) -> list[str]:
    """Resolve ``host`` with the system resolver (``socket.getaddrinfo``), every address family."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is a globally routable unicast address.

    Loopback, private (RFC 1918, IPv6 ULA), link-local (incl. the 169.254.169.254 metadata
    server), multicast, reserved, unspecified, shared (CGNAT) and documentation ranges are not
    public; nor is an IPv6 address embedding such an IPv4 address.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(embedded):
            return False
    return bool(
        ip.is_global
        and not (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        )
    )


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def check_url(
    url: str,
    *,
    allowed_hosts: frozenset[str] = frozenset(),
    allow_private: bool = False,
    resolver: Resolver | None = None,
) -> None:
    """Raise :class:`UnsafeURL` unless ``url`` may be requested.

    - the scheme is http or https, the URL has a host and no user-info;
    - if ``allowed_hosts`` is non-empty, the host equals one of them (case-insensitive, exact:
      no substring or suffix matching);
    - every address the host resolves to is public (:func:`is_public_address`), unless
      ``allow_private``. ``resolver`` replaces the system resolver (tests, custom DNS).
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise UnsafeURL(f"URL is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"URL scheme {scheme or '(none)'!r} is not allowed; use http or https")
    if not host:
        raise UnsafeURL("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("URL must not carry credentials")
    host = _normalise_host(host)
    if allowed_hosts and host not in {_normalise_host(h) for h in allowed_hosts}:
        raise UnsafeURL(f"host {host!r} is not in the allowed hosts")
    if allow_private:
        return
    for ip in _resolve(host, resolver):
        if not is_public_address(ip):
            raise UnsafeURL(f"host {host!r} resolves to non-public address {ip}")


def _resolve(host: str, resolver: Resolver | None) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        raw = list((resolver or system_resolver)(host))
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"host {host!r} cannot be resolved: {exc}") from exc
    if not raw:
        raise UnsafeURL(f"host {host!r} resolves to no address")
    addresses: list[IPAddress] = []
    for text in raw:
        try:
            addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError as exc:
            raise UnsafeURL(f"host {host!r} resolves to unparsable address {text!r}") from exc
    return addresses


def redirect_guard_hook(
    *,
    allowed_hosts: frozenset[str] = frozenset(),
    allow_private: bool = False,
    resolver: Resolver | None = None,
) -> Callable[[httpx.Request], None]:
    """An httpx ``request`` event hook that checks every request, redirect hops included.

    Use with ``httpx.Client(event_hooks={"request": [hook]}, follow_redirects=True,
    max_redirects=5)``; :class:`UnsafeURL` propagates out of the request call.
    """

    def hook(request: httpx.Request) -> None:
        check_url(
            str(request.url),
            allowed_hosts=allowed_hosts,
            allow_private=allow_private,
            resolver=resolver,
        )

    return hook


@contextmanager
def guarded_stream(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    allowed_hosts: frozenset[str] = frozenset(),
    allow_private: bool = False,
    resolver: Resolver | None = None,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    **request_kwargs: Any,
) -> Iterator[httpx.Response]:
    """Send a streamed request, following up to ``max_redirects`` redirects by hand.

    Every URL (the first and each ``Location``) goes through :func:`check_url` before it is
    requested. Yields the final, non-redirect response (its body not yet read); raises
    :class:`UnsafeURL` for an unsafe hop or too many redirects. httpx transport errors propagate.
    """
    request = client.build_request(method, url, **request_kwargs)
    hops = 0
    while True:
        check_url(
            str(request.url),
            allowed_hosts=allowed_hosts,
            allow_private=allow_private,
            resolver=resolver,
        )
        response = client.send(request, stream=True, follow_redirects=False)
        next_request = response.next_request if response.is_redirect else None
        if next_request is None:
            try:
                yield response
            finally:
                response.close()
            return
        response.close()
        hops += 1
        if hops > max_redirects:
            raise UnsafeURL(f"more than {max_redirects} redirects")
        request = next_request
