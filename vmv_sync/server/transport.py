"""Transport limits: a header timeout, a WebSocket handshake timeout, connection caps.

uvicorn 0.54 (httptools + websockets-sansio) leaves these open, read from its source:

- ``HttpToolsProtocol.connection_made`` arms no timer. Its only timer is the
  keep-alive one, armed in ``on_response_complete``, i.e. after a first response, and
  cancelled by ``data_received`` on any byte. So a socket that never sends, or sends
  half a request head and stops (slowloris), stays open forever; so does a
  keep-alive socket that sends a byte every few seconds.
- ``WebSocketsSansIOProtocol`` arms nothing until ``websocket.accept`` (its ping
  timer starts only then); an upgrade the app never answers is held forever.
- ``limit_concurrency`` is checked only once a request head is complete (so it never
  sees idle or half-open sockets), answers HTTP with 503 but skips WebSocket
  upgrades entirely, and logs a warning for every request. There is no per-address
  cap at all.

The classes here close those gaps by subclassing uvicorn's two protocols (passed to
``uvicorn.Config`` as ``http=`` and ``ws=``). Every check runs once per connection
or once per HTTP request head, never per WebSocket frame: the WebSocket subclass
overrides only ``connection_made`` and ``connection_lost``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import TimerHandle
from asyncio.transports import BaseTransport
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .clientaddr import address_key, is_loopback_key

__all__ = ("ConnectionGate", "TransportLimits", "protocol_classes", "peer_key")

logger = logging.getLogger(__name__)

#: what a client whose request head outgrows the cap reads (then the socket closes)
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 29\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"request head over the size cap"
)

#: what a refused HTTP client reads (written before its request, then the socket closes)
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 25\r\n"
    b"retry-after: 10\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"too many open connections"
)


def peer_key(transport: BaseTransport) -> str:
    """The client address a connection is counted under: the TCP peer, keyed by
    :func:`~vmv_sync.server.clientaddr.address_key` (as the HTTP rate limits key it)."""
    peer = transport.get_extra_info("peername")
    # a Unix socket or an unknown peer: all share one key ("unknown", as for HTTP)
    return address_key(str(peer[0]) if isinstance(peer, tuple) and peer else None)


class ConnectionGate:
    """Counts open connections in all and per client address; refuses past either cap.

    A refusal must cost less than the connection it refuses, so the gate logs one
    WARNING when refusals start, then at most one line per ``log_interval`` while
    they go on (with the count), and one INFO line when a whole interval passes
    without any: a flood of refusals yields a handful of lines, never one per socket.
    """

    def __init__(
        self,
        max_total: int,
        max_per_address: int,
        *,
        log_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_total = max_total
        #: 0: no per-address cap
        self.max_per_address = max_per_address
        self.log_interval = log_interval
        self.clock = clock
        self.total = 0
        self.per_address: dict[str, int] = {}
        #: refusals since start (for tests and for operators reading it in a debugger)
        self.refused_total = 0
        self._window_refused = 0
        self._episode_refused = 0
        self._episode_start = 0.0
        self._timer: TimerHandle | None = None

    def admit(self, address: str, *, per_address_cap: bool = True) -> bool:
        """Count a new connection from ``address``, or refuse it (and count nothing).

        ``per_address_cap=False`` (a loopback peer, unless asked otherwise) is held
        to the global cap only, but still counted under its address.
        """
        held = self.per_address.get(address, 0)
        capped = per_address_cap and self.max_per_address and held >= self.max_per_address
        if self.total >= self.max_total or capped:
            self._refused(address, held)
            return False
        self.total += 1
        self.per_address[address] = held + 1
        return True

    def release(self, address: str) -> None:
        """Forget one admitted connection from ``address`` (its socket is gone)."""
        self.total -= 1
        held = self.per_address.get(address, 0) - 1
        if held > 0:
            self.per_address[address] = held
        else:
            self.per_address.pop(address, None)

    def _refused(self, address: str, held: int) -> None:
        self.refused_total += 1
        self._episode_refused += 1
        if self._timer is not None:
            self._window_refused += 1
            return
        self._episode_start = self.clock()
        which = "all connections" if self.total >= self.max_total else "per-address"
        logger.warning(
            "refusing new connections (%s cap): address %s holds %d (cap %s), %d open in all (cap %d); "
            "further refusals are summed up every %g s",
            which, address or "?", held, self.max_per_address or "none", self.total, self.max_total,
            self.log_interval,
        )  # fmt: skip
        self._arm()

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside a loop (a unit test): no summaries
            return
        self._timer = loop.call_later(self.log_interval, self._tick)

    def _tick(self) -> None:
        """End of a log window: sum up its refusals, or end the episode."""
        self._timer = None
        if self._window_refused:
            logger.warning(
                "still refusing connections: %d refused in the last %g s; %d open in all (cap %d), %d addresses",
                self._window_refused, self.log_interval, self.total, self.max_total, len(self.per_address),
            )  # fmt: skip
            self._window_refused = 0
            self._arm()
            return
        logger.info(
            "stopped refusing connections: %d refused over %.0f s; %d open in all",
            self._episode_refused, self.clock() - self._episode_start, self.total,
        )  # fmt: skip
        self._episode_refused = 0

    def close(self) -> None:
        """Cancel the pending log summary (server shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass
class TransportLimits:
    """The limits one server applies; shared by every connection's protocol object."""

    #: seconds for a complete HTTP request head, from the connection's opening or
    #: from the end of the previous response on a keep-alive connection
    header_timeout: float
    #: seconds from a complete upgrade request head to the server's answer to it
    handshake_timeout: float
    gate: ConnectionGate
    #: hold loopback peers to the per-address cap too. Off by default: the default
    #: bind is 127.0.0.1, so a reverse proxy on the same host (every client through
    #: one loopback address) would otherwise be capped at max_per_address in all.
    cap_loopback: bool = False
    #: most bytes of one HTTP request head (request line and headers); 431 past it.
    #: The header timeout bounds how long a head may take, not how big it grows:
    #: httptools hands every header line to uvicorn, which keeps them all.
    max_head_bytes: int = 64 * 1024
    #: largest WebSocket message (the contract's limit): refused at the frame header
    #: with 4413, before its payload is read or assembled
    max_message_size: int = 1024 * 1024
    #: connections closed by either timeout (read by tests and operators)
    timed_out: dict[str, int] = field(default_factory=lambda: {"header": 0, "handshake": 0})
    #: connections closed because their request head outgrew max_head_bytes
    heads_refused: int = 0


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the connection caps and the header timeout.

    Every connection starts here (an upgrade hands the socket to
    :class:`GuardedWebSocketProtocol`, which then holds its slot in the gate).
    """

    limits: ClassVar[TransportLimits]
    _head_timer: TimerHandle | None = None
    _peer = ""
    _refused = False
    _head_refused = False
    _upgraded = False
    #: bytes read since the current request head began; None once it is complete
    _head_bytes: int | None = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = peer_key(transport)
        limits = self.limits
        if not limits.gate.admit(peer, per_address_cap=limits.cap_loopback or not is_loopback_key(peer)):
            # Refused before uvicorn sees it: not in server_state.connections, no
            # parser callbacks (the transport stops reading once closed).
            self._refused = True
            transport.write(_REFUSED)
            transport.close()
            return
        self._peer = peer
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._cancel_head_timer()
        if not self._upgraded:
            self.limits.gate.release(self._peer)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._head_refused:  # bytes read before the refusal closed the socket
            return
        if self._head_bytes is not None:
            # Judged on what came before this chunk, so a head and the start of its body
            # arriving in one read never count as head; memory stays under the cap plus
            # one read (uvloop reads at most 256 KiB).
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse_head()
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def _refuse_head(self) -> None:
        """Answer 431 and close; connection_lost then releases the slot as usual."""
        self._head_refused = True
        self._cancel_head_timer()
        self.limits.heads_refused += 1
        logger.info("closing %s: request head over %d bytes", self._peer, self.limits.max_head_bytes)
        if not self.transport.is_closing():
            self.transport.write(_HEAD_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_bytes is None:  # a pipelined or keep-alive request: a new head
            self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._head_bytes = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        # The next head must arrive in time too: uvicorn's keep-alive timer is
        # cancelled by any byte, so without this a keep-alive socket could trickle
        # forever. A pipelined request's head is already complete.
        if not pipelined and not self.transport.is_closing():
            self._arm_head_timer()

    def handle_websocket_upgrade(self) -> None:
        # From here the WebSocket protocol receives connection_lost and releases the slot.
        self._upgraded = True
        super().handle_websocket_upgrade()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:  # pragma: no cover - defensive
            self.cycle.keep_alive = False  # a request is being answered: close after it
            return
        self.limits.timed_out["header"] += 1
        logger.debug("closing %s: no complete request head within %g s", self._peer, self.limits.header_timeout)
        self.transport.close()


#: after a refused frame, how much more of it the server reads and discards (and for
#: how long) so that the client receives the close frame instead of a reset
_DRAIN_BYTES = 2 * 1024 * 1024
_DRAIN_SECONDS = 2.0


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with the handshake timeout and the gate slot.

    Only reached through :meth:`GuardedHttpProtocol.handle_websocket_upgrade`, which
    admitted the connection; this object releases its slot when the socket goes.
    The timer is one ``call_later`` per connection; frames take uvicorn's path untouched.
    """

    limits: ClassVar[TransportLimits]
    _handshake_timer: TimerHandle | None = None
    _peer = ""
    #: bytes still to discard after a refused frame; None while frames are read
    _drain_left: int | None = None
    _drain_timer: TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The sans-I/O parser refuses a frame whose header announces more than its
        # max_size (uvicorn passes ws_max_size, set to the contract's limit) before
        # reading the payload, and fails the connection with 1009; the contract's code
        # for a message over the limit is 4413.
        fail = self.conn.fail

        def fail_with_contract_code(code: int, reason: str = "") -> None:
            if code == 1009:
                code, reason = 4413, f"message over the {self.limits.max_message_size} byte limit"
            fail(code, reason)

        self.conn.fail = fail_with_contract_code  # type: ignore[method-assign]

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        self._peer = peer_key(transport)
        self._handshake_timer = self.loop.call_later(self.limits.handshake_timeout, self._handshake_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        self.limits.gate.release(self._peer)
        super().connection_lost(exc)

    def handle_parser_exception(self) -> None:
        """Send the close frame (4413 for a frame over the limit), then drain a while.

        uvicorn closes the socket at once, while the rest of the refused frame is still
        arriving: closing a socket with unread bytes makes the kernel send a reset,
        which can reach the client before the close frame does (it then sees 1006, not
        the contract's code). So the server half-closes, discards what still comes
        (nothing is parsed or kept) and closes once the client does, after
        ``_DRAIN_BYTES`` more bytes, or after ``_DRAIN_SECONDS``.
        """
        assert self.conn.close_sent is not None
        close = self.conn.close_sent
        self.queue.put_nowait({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._drain_left = _DRAIN_BYTES
        self._drain_timer = self.loop.call_later(_DRAIN_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._drain_left is None:
            super().data_received(data)
            return
        self._drain_left -= len(data)
        if self._drain_left <= 0:
            self.transport.close()

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self.handshake_complete or self.transport.is_closing():
            return
        self.limits.timed_out["handshake"] += 1
        logger.info(
            "closing %s: WebSocket handshake not answered within %g s", self._peer, self.limits.handshake_timeout
        )
        if self.handshake_initiated and self.initial_response is None:
            response = self.conn.reject(503, "WebSocket handshake timed out\n")
            self.conn.send_response(response)
            self.transport.write(b"".join(self.conn.data_to_send()))
        # uvicorn drops what the app sends to a closing transport; connection_lost
        # then hands it the disconnect.
        self.transport.close()


def protocol_classes(limits: TransportLimits) -> tuple[type[GuardedHttpProtocol], type[GuardedWebSocketProtocol]]:
    """Subclasses bound to one server's limits, for ``uvicorn.Config(http=..., ws=...)``.

    uvicorn builds protocols itself (``config``, ``server_state``, ``app_state``),
    so the limits ride on the classes rather than the constructor.
    """
    attrs: dict[str, Any] = {"limits": limits}
    http = type("VmvHttpProtocol", (GuardedHttpProtocol,), dict(attrs))
    ws = type("VmvWebSocketProtocol", (GuardedWebSocketProtocol,), dict(attrs))
    return http, ws
