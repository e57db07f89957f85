"""Which network addresses the fetcher may connect to, and how host names become them.

The fetcher must never be tricked into reaching the machine it runs on or the
network behind it (SSRF). Every address is judged here: literal IPs in any
spelling a resolver accepts, and every address DNS returns for a name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]

# Prefixes that carry an IPv4 address inside an IPv6 one: a public-looking IPv6
# address may still route to a private IPv4 host through a translator.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class BlockedAddress(Exception):
    """A host resolved to (or is) an address the policy refuses."""

    def __init__(self, host: str, address: IPAddress) -> None:
        if host.strip("[]") == str(address):
            message = f"{address} is not a public address"
        else:
            message = f"{host} resolves to {address}, which is not a public address"
        super().__init__(message)
        self.host = host
        self.address = address


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is a globally routable unicast address, including any IPv4 inside it."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public_address(inner):
            return False
    # `is_global` alone misses a few ranges on some Python versions, hence the belt and braces.
    return (
        ip.is_global
        and not ip.is_private
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_unspecified
    )


_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}


def _ipv4_part(text: str) -> int | None:
    """One dotted part the way inet_aton and browsers read it: 0x hex, leading-0 octal."""
    if text[:2].lower() == "0x":
        digits, base = text[2:].lower(), 16
        if digits == "":
            return 0
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits or not set(digits) <= _DIGITS[base]:
        return None
    return int(digits, base)


def ends_in_number(host: str) -> bool:
    """True when the last label is numeric, which makes the host an IPv4 address or invalid."""
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels.pop()
    return bool(labels) and _ipv4_part(labels[-1]) is not None


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_part(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    # "1.2.3" means 1.2.0.3 and "1.2" means 1.0.0.2: the last part fills the rest.
    if any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    number = values[-1]
    for i, v in enumerate(values[:-1]):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def parse_ip_host(host: str) -> IPAddress | None:
    """The address a literal-IP host means, in any spelling (`[::1]`, `2130706433`,
    `0x7f.1`, `0177.0.0.1`); None for a host name."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            # A zone id ("fe80::1%eth0") says nothing about the address class.
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    return _parse_ipv4(text)


def resolve_checked(
    host: str, port: int, *, allow_private: bool, policy: AddressPolicy | None = None
) -> list[IPAddress]:
    """Every address `host` resolves to, refusing the lot if any one is not allowed.

    Refusing on any bad answer (not just the first) stops a name that mixes a public
    and a private address from winning on a retry. Raises BlockedAddress, or OSError
    when the name does not resolve.
    """
    allowed: AddressPolicy = policy or ((lambda _ip: True) if allow_private else is_public_address)
    literal = parse_ip_host(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        addresses = []
        for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise OSError(f"{host} did not resolve to any address")
    for ip in addresses:
        if not allowed(ip):
            raise BlockedAddress(host, ip)
    return addresses
