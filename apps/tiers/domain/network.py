"""IP allow-lists: parsing CIDR text and finding the client address behind trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma, space or newline separated addresses or CIDRs; raises ValueError naming a bad entry."""
    networks = []
    for entry in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR: {entry!r}") from exc
    return tuple(networks)


def parse_address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_ip_allowed(address: IPAddress | None, networks: Sequence[IPNetwork]) -> bool:
    """An empty allow-list allows every address; otherwise the address must fall inside one entry."""
    if not networks:
        return True
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    remote_addr: str | None, forwarded_for: str | None, trusted: Iterable[IPNetwork]
) -> IPAddress | None:
    """The first untrusted hop, reading X-Forwarded-For right to left, only when the peer is a trusted proxy."""
    trusted = tuple(trusted)
    peer = parse_address(remote_addr)
    if peer is None or not forwarded_for or not is_trusted(peer, trusted):
        return peer
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        address = parse_address(hop)
        if address is None:
            return peer
        if not is_trusted(address, trusted):
            return address
    return peer


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return bool(trusted) and is_ip_allowed(address, trusted)
