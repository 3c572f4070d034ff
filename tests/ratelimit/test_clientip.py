"""Client addresses: X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest

from backline.ratelimit.clientip import client_ip, rate_key

PROXIES = [ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")]


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 1234) if peer else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", ["1.2.3.4"], [], "203.0.113.9"),  # nobody trusted: header ignored
        ("203.0.113.9", ["1.2.3.4"], PROXIES, "203.0.113.9"),  # peer is not a proxy
        ("10.1.1.1", ["198.51.100.7"], PROXIES, "198.51.100.7"),
        ("10.1.1.1", ["6.6.6.6, 198.51.100.7, 10.2.2.2"], PROXIES, "198.51.100.7"),
        ("10.1.1.1", ["6.6.6.6", "198.51.100.7"], PROXIES, "198.51.100.7"),  # two headers
        ("10.1.1.1", ["10.3.3.3"], PROXIES, "10.1.1.1"),  # only proxies: the peer
        ("10.1.1.1", ["garbage, 198.51.100.7"], PROXIES, "198.51.100.7"),
        ("10.1.1.1", ["198.51.100.7, not-an-ip"], PROXIES, "10.1.1.1"),
        ("2001:db8::1", ["[2001:db8:1::5], 2a00::1"], PROXIES, "2a00::1"),
        (None, [], PROXIES, "unknown"),
    ],
)
def test_client_ip(
    peer: str | None, forwarded: list[str], trusted: list[Any], expected: str
) -> None:
    assert client_ip(scope(peer, *forwarded), trusted) == expected


@pytest.mark.parametrize(
    ("address", "prefix", "expected"),
    [
        ("203.0.113.9", 64, "203.0.113.9"),
        ("::ffff:203.0.113.9", 64, "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2::", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::/56"),
        ("2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6/128"),
        ("unknown", 64, "unknown"),
    ],
)
def test_rate_key_groups_ipv6_by_network(address: str, prefix: int, expected: str) -> None:
    assert rate_key(address, prefix) == expected
