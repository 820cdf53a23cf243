"""The room's presence table (its awareness states): presence the server controls.

Not to be confused with the awareness wire payload (protocol/awareness_update.py),
the state schema of contract section 5 (vmv_sync/presence.py) or the client's own
table (client/presence.py).

Unlike a relay, the server keeps the latest state of every client id, knows which
connection announced it, and is the one that removes it: at once when that
connection closes, or after ``timeout`` seconds without renewal. Changes are
coalesced and sent as one message per tick carrying only the latest state of each
changed client, so cursor traffic no longer grows with the square of the room.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ClientIdTaken, Forbidden, MessageTooLarge, TooManyMessages
from ..presence import supersedes
from ..protocol import AwarenessEntry, encode_awareness, encode_awareness_update
from .auth import Principal
from .connection import Connection

__all__ = ("RoomAwareness", "check_awareness_identity", "FRAME_ENTRIES", "FRAME_BYTES")

#: Outgoing awareness frames are split to hold at most this many entries ...
FRAME_ENTRIES = 1000
#: ... and about this many bytes of states, well below every client's frame limit.
FRAME_BYTES = 256 * 1024

logger = logging.getLogger(__name__)


def check_awareness_identity(entries: Iterable[AwarenessEntry], principal: Principal) -> None:
    """A state's ``user`` must be the token's identity (4403 otherwise).

    A state without ``user`` (a provider's initial ``{}``) is allowed; one that names
    a user names the token's ``{id, name, role}``, so presence cannot be spoofed.
    """
    for entry in entries:
        if entry.state is None or "user" not in entry.state:
            continue
        user = entry.state["user"]
        if not isinstance(user, dict):
            raise Forbidden("awareness 'user' must be an object")
        if user.get("id") != principal.participant_id:
            raise Forbidden("awareness 'user.id' must be the token's participant id")
        if "name" in user and user["name"] != principal.name:
            raise Forbidden("awareness 'user.name' must be the token's name")
        if "role" in user and user["role"] != principal.role:
            raise Forbidden("awareness 'user.role' must be the token's role")


@dataclass(slots=True)
class _Client:
    clock: int
    state_json: str  # "null" once removed
    conn_id: int | None
    participant_id: str | None
    updated: float  # monotonic time of the last renewal
    removed_at: float | None = None  # monotonic time the server removed the state
    offset: int = 0  # the server's clock minus the client's, after reclaims


class RoomAwareness:
    """Latest awareness state per client id, with owners and pending changes."""

    def __init__(self, timeout: float, *, max_clients_per_connection: int = 16, max_state_bytes: int = 16384) -> None:
        self.timeout = timeout
        self.max_clients_per_connection = max_clients_per_connection
        self.max_state_bytes = max_state_bytes
        self._clients: dict[int, _Client] = {}
        self._dirty: set[int] = set()

    # -- writing ---------------------------------------------------------------
    def apply(self, conn: Connection, entries: Iterable[AwarenessEntry]) -> None:
        """Apply a connection's awareness update (y-protocols clock rules), server-controlled.

        - An entry that changes nothing (same or older clock) is ignored. Stock
          y-websocket providers echo every state they receive back to the server, so
          echoes of other clients' states must pass silently.
        - Only the connection that announced a client id may renew, change or remove
          its state. A removal sent by another connection is ignored (presence is the
          server's to clear); a newer state for a client id of another participant is
          a spoof and refused with 4403. With authentication off, or for the same
          participant (a reconnect whose old socket is not yet known dead), the newer
          connection takes the client id over.
        - With authentication on, a state's ``user`` must be the token's identity.
        """
        now = time.monotonic()
        pid = conn.principal.participant_id
        entries = list(entries)
        # A provider that reconnects re-announces its state with the clock the server
        # saw before removing it; taking that as an echo would hide it for ~15 s.
        first = not conn.awareness_seen and len(entries) == 1
        conn.awareness_seen = True
        for entry in entries:
            current = self._clients.get(entry.client_id)
            removing = entry.state is None
            offset = 0
            if current is None:
                if removing:
                    continue
                sclock = entry.clock
            else:
                owned = current.conn_id == conn.id
                live = current.state_json != "null"
                # Clocks from the client itself are shifted by its offset; echoes from
                # other peers carry the clocks the server relayed and are compared as is.
                same_client = owned or (
                    current.conn_id is None and (pid is None or current.participant_id == pid)
                ) or (pid is not None and current.participant_id == pid)
                offset = current.offset if same_client else 0
                sclock = entry.clock + offset
                newer = supersedes(current.clock, sclock, removal=removing, live=live)
                reclaim = (
                    first and same_client and not owned and not live and not removing and current.clock == sclock
                )
                if reclaim:
                    # Peers ignore a state whose clock they already saw removed: relay
                    # the reclaimed state one clock later and remember the shift.
                    offset += 1
                    sclock += 1
                elif not newer:
                    if owned:
                        current.updated = now
                    continue
                elif not owned and current.conn_id is not None:
                    if removing:
                        continue
                    if pid is not None and current.participant_id != pid:
                        raise ClientIdTaken(entry.client_id)
                elif not owned and pid is not None and current.participant_id not in (None, pid):
                    raise ClientIdTaken(entry.client_id)
            if not removing:
                if len(entry.state_json) > self.max_state_bytes:
                    raise MessageTooLarge(f"an awareness state may hold at most {self.max_state_bytes} bytes")
                if entry.client_id not in conn.awareness_ids and len(conn.awareness_ids) >= self.max_clients_per_connection:
                    raise TooManyMessages(
                        f"one connection may announce at most {self.max_clients_per_connection} awareness clients"
                    )
                if conn.principal.authenticated:
                    check_awareness_identity((entry,), conn.principal)
            self._clients[entry.client_id] = _Client(
                clock=sclock,
                state_json=entry.state_json,
                conn_id=None if removing else conn.id,
                participant_id=pid,
                updated=now,
                removed_at=now if removing else None,
                offset=offset,
            )
            if removing:
                conn.awareness_ids.discard(entry.client_id)
            else:
                conn.awareness_ids.add(entry.client_id)
            self._dirty.add(entry.client_id)

    def remove_connection(self, conn: Connection) -> None:
        """Mark every client id this connection owns as gone."""
        for cid in conn.awareness_ids:
            client = self._clients.get(cid)
            if client is not None and client.conn_id == conn.id:
                self._remove(cid, client)
        conn.awareness_ids.clear()

    def expire(self) -> int:
        """Remove states not renewed within the timeout; returns how many.

        Also forgets removed entries after twice the timeout: their clocks are kept
        that long so late echoes of a removed state are recognised as echoes.
        """
        now = time.monotonic()
        forget = now - 2 * self.timeout
        for cid in [c for c, e in self._clients.items() if e.removed_at is not None and e.removed_at < forget]:
            del self._clients[cid]
        deadline = now - self.timeout
        stale = [
            (cid, c)
            for cid, c in self._clients.items()
            if c.state_json != "null" and c.updated < deadline
        ]
        for cid, client in stale:
            logger.debug("awareness client %d expired", cid)
            self._remove(cid, client)
        return len(stale)

    def _remove(self, cid: int, client: _Client) -> None:
        # Same clock with a null state: y-protocols peers accept it as a removal, and
        # the client's own next state (clock + 1) is still accepted after a reconnect.
        client.state_json = "null"
        client.conn_id = None
        client.removed_at = time.monotonic()
        self._dirty.add(cid)

    # -- encoding --------------------------------------------------------------
    def take_changes(self) -> list[bytes]:
        """Awareness frames with the latest state of every changed client (none: [])."""
        if not self._dirty:
            return []
        ids = sorted(self._dirty)
        self._dirty.clear()
        return _frames([(cid, self._clients[cid].clock, self._clients[cid].state_json) for cid in ids])

    def full_frames(self) -> list[bytes]:
        """Every live state, for a new or querying connection, split into bounded frames."""
        return _frames([(cid, c.clock, c.state_json) for cid, c in self._clients.items() if c.state_json != "null"])


def _frames(entries: list[tuple[int, int, str]]) -> list[bytes]:
    frames: list[bytes] = []
    start = 0
    size = 0
    for i, (_, _, state_json) in enumerate(entries):
        size += len(state_json) + 16
        if i > start and (i - start >= FRAME_ENTRIES or size > FRAME_BYTES):
            frames.append(encode_awareness(encode_awareness_update(entries[start:i])))
            start, size = i, len(state_json) + 16
    if start < len(entries):
        frames.append(encode_awareness(encode_awareness_update(entries[start:])))
    return frames
