"""IP allow-lists per route group, and the caller's address behind trusted proxies.

``IP_ALLOWLIST`` names CIDRs per route group, groups separated by ``;``::

    webhooks=10.0.0.0/8,2001:db8::/32;polling=192.168.1.0/24;admin=127.0.0.1/32

A group that is not named is open to every address; a named group admits only its CIDRs.
``X-Forwarded-For`` is believed only when the connection comes from a ``TRUSTED_PROXIES`` CIDR:
the header is then read from the right, skipping trusted proxies, and the first address that is
not a trusted proxy is the caller.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ROUTE_GROUPS = ("webhooks", "polling", "admin")


def parse_networks(items: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or bare addresses) -> networks; ``ValueError`` naming the first bad one."""
    networks = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR") from None
    return tuple(networks)


@lru_cache(maxsize=32)
def parse_allowlist(text: str) -> dict[str, tuple[IPNetwork, ...]]:
    """``webhooks=CIDR,CIDR;polling=CIDR`` -> {group: networks}; ``ValueError`` when malformed."""
    groups: dict[str, tuple[IPNetwork, ...]] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, cidrs = part.partition("=")
        group = name.strip().lower()
        if not sep:
            raise ValueError(f"expected group=CIDR[,CIDR...], got {part.strip()!r}")
        if group not in ROUTE_GROUPS:
            raise ValueError(f"unknown route group {group!r}; known: {', '.join(ROUTE_GROUPS)}")
        if group in groups:
            raise ValueError(f"route group {group!r} is listed twice")
        networks = parse_networks(cidrs.split(","))
        if not networks:
            raise ValueError(f"route group {group!r} lists no CIDR")
        groups[group] = networks
    return groups


@lru_cache(maxsize=32)
def _trusted(items: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return parse_networks(items)


def parse_address(text: str) -> IPAddress | None:
    """An address (IPv4-mapped IPv6 as IPv4; brackets, ports and zone ids removed), or None."""
    value = text.strip()
    if value.startswith("["):  # [2001:db8::1]:443
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # 10.0.0.1:5678
        value = value.split(":", 1)[0]
    value = value.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def contains(networks: Iterable[IPNetwork], address: IPAddress | None) -> bool:
    if address is None:
        return False
    return any(address.version == network.version and address in network for network in networks)


def forwarded_client(remote: str, forwarded_for: str, trusted_proxies: Iterable[str]) -> str:
    """The caller's address: ``remote`` unless it is a trusted proxy, then from X-Forwarded-For."""
    trusted = _trusted(tuple(trusted_proxies))
    if not trusted or not contains(trusted, parse_address(remote)):
        return remote
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return remote  # a forged or garbled hop: do not look further left
        if not contains(trusted, address):
            return str(address)
    return str(parse_address(hops[0])) if hops else remote


def admitted(allowlist: str, group: str | None, address: str) -> bool:
    """Whether ``address`` may use routes of ``group`` under ``allowlist`` (``IP_ALLOWLIST``)."""
    if not group or not allowlist.strip():
        return True
    networks = parse_allowlist(allowlist).get(group)
    return networks is None or contains(networks, parse_address(address))
