"""Client addresses: whom a limit counts, and which proxies may say who the client is.

One rule for every limit keyed by address (the HTTP rate limits in ratelimits.py and
the transport's per-address connection cap in transport.py), so the two never count
one host under two keys:

- an IPv4 address counts as itself, and so does an IPv4 peer of a dual-stack
  listener (``::ffff:a.b.c.d``);
- an IPv6 address counts as its /64 network, since one host usually holds a whole
  /64 and could otherwise pick a fresh address per request; the IPv6 loopback
  counts as ``::1`` (a user or proxy on this host, like 127.0.0.1);
- anything else (a Unix socket, no peer) counts as its text, or ``unknown``.

Behind a reverse proxy, the TCP peer is the proxy. With trusted proxies configured
(``--forwarded-allow-ips``), uvicorn's proxy-headers middleware replaces the ASGI
scope's client by the address the proxy appended to ``X-Forwarded-For``, taking the
right-most address that is not itself a trusted proxy. Headers from any other peer
are ignored, so a client cannot spoof its way to a fresh rate-limit budget. The
transport's connection cap sees sockets before any header, so it keeps counting the
proxy (``per_address_cap_loopback`` says whether a proxy on loopback is capped).
"""

from __future__ import annotations

import ipaddress

from ..errors import ConfigError

__all__ = ("address_key", "is_loopback_key", "check_trusted_proxies")


def address_key(host: str | None) -> str:
    """The key a client address is counted under (see the module's rules)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone says nothing of the host
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # a dual-stack listener's IPv4 peer
            return str(address.ipv4_mapped)
        if address.is_loopback:
            return "::1"
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def is_loopback_key(key: str) -> bool:
    """Whether an :func:`address_key` is a loopback address (a proxy or a user on this host)."""
    return key.startswith("127.") or key == "::1"


def check_trusted_proxies(entries: tuple[str, ...]) -> list[str]:
    """The trusted-proxy list for uvicorn, checked: IP addresses, networks, or ``*``.

    A typo here would silently trust nobody (every user behind the proxy shares one
    budget) or, worse, a wider network than meant; so anything that is not an address
    or a network is a configuration error, reported before the server starts.
    """
    checked: list[str] = []
    for entry in entries:
        if entry == "*":
            checked.append(entry)
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ConfigError(
                f"forwarded_allow_ips: {entry!r} is not an IP address, a network (10.0.0.0/8) or '*'"
            ) from exc
        checked.append(entry)
    return checked
