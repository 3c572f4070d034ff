"""The client's IP address, as the rate limits and the audit log see it.

The TCP peer is the client unless it is a trusted proxy (BACKLINE_TRUSTED_PROXIES, addresses
or networks, none by default). Then `X-Forwarded-For` is read from the right, skipping trusted
proxies, and the first address that is not one is the client: entries further left were
written by the client itself and prove nothing.

Rate limits count an IPv6 client by its network (`rate_key`, a /64 by default): one host is
handed a whole /64 and can change its address within it at will, so counting per address would
give it billions of budgets. IPv4 (and IPv4-mapped IPv6) is counted per address.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address

from starlette.datastructures import Headers
from starlette.types import Scope

Network = IPv4Network | IPv6Network


def _parse(value: str) -> str | None:
    try:
        return str(ip_address(value.strip().strip("[]")))
    except ValueError:
        return None


# The TCP peers of one process are few and come back with every request: parsing each anew
# cost a rate-limited request more than its counting did. Forwarded hops are not cached: a
# client chooses those.
_peer = lru_cache(maxsize=4096)(_parse)


def client_ip(scope: Scope, trusted: Sequence[Network] = ()) -> str:
    client = scope.get("client")
    peer = _peer(client[0]) if client else None
    if peer is None:
        return "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = Headers(scope=scope).getlist("x-forwarded-for")
    hops = [hop for header in forwarded for hop in header.split(",")]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return peer  # a garbled chain: trust nothing in it
        if not _is_trusted(address, trusted):
            return address
    return peer


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    parsed = ip_address(address)
    return any(parsed in network for network in trusted)


@lru_cache(maxsize=16384)
def rate_key(address: str, ipv6_prefix: int = 64) -> str:
    """What the rate limits count for a client address: itself, or its IPv6 network."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return address  # "unknown": no address to group
    if not isinstance(parsed, IPv6Address):
        return address
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(IPv6Network((parsed, ipv6_prefix), strict=False))
