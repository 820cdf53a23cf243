"""One client-address key (server/clientaddr.py) for the transport's cap and the HTTP rate limits.

The transport keys a real TCP peer (``peer_key``, from the socket), the rate limits an
ASGI scope's client (``client_key``): over real loopback sockets both give one key.
"""

from __future__ import annotations

import asyncio

import pytest

from vmv_sync.server.clientaddr import address_key, is_loopback_key
from vmv_sync.server.ratelimits import client_key
from vmv_sync.server.transport import peer_key

pytestmark = pytest.mark.anyio


async def keys_of_a_connection_from(host: str) -> tuple[str, str]:
    """(peer_key, client_key) of one real TCP connection from ``host`` to ``host``."""
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[tuple[str, str]] = loop.create_future()

    class Peer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            address = transport.get_extra_info("peername")
            seen.set_result((peer_key(transport), client_key({"client": (address[0], address[1])})))
            transport.close()

    try:
        server = await loop.create_server(Peer, host, 0)
    except OSError:
        pytest.skip(f"no {host} on this machine")
    async with server:
        _, writer = await asyncio.open_connection(host, server.sockets[0].getsockname()[1])
        keys = await asyncio.wait_for(seen, 5)
        writer.close()
    return keys


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_the_transport_and_the_rate_limits_key_a_peer_alike(host: str) -> None:
    from_transport, from_scope = await keys_of_a_connection_from(host)
    assert from_transport == from_scope == host and is_loopback_key(from_transport)


def test_no_peer_is_unknown_to_both() -> None:
    assert address_key(None) == client_key({}) == "unknown"
