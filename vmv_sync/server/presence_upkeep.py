"""A room's presence upkeep: the awareness loop, and the client ids announced in awareness.

The loop sends the room's awareness changes to every peer, coalesced within one tick,
drops the peers silent past the awareness timeout and expires stale states. The
claims: y-websocket clients announce their document's client id in awareness, where
others learn it before any update under it; the server claims it for the announcer
first, so nobody can squat it and silently swallow the owner's offline edits.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import anyio
from pycrdt import Doc

from ..config import Settings
from ..errors import SilentPeer, TooManyMessages
from ..protocol import decode_state_vector
from .clientids import ClientIds
from .connection import Connection
from .origins import RoomLink
from .presence_table import RoomAwareness

__all__ = ("PresenceUpkeep",)


class _Room(Protocol):
    """What the upkeep reads of its room (read at each use: the room replaces its document)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def doc(self) -> Doc[Any]: ...
    @property
    def client_ids(self) -> ClientIds: ...
    @property
    def awareness(self) -> RoomAwareness: ...
    @property
    def connections(self) -> dict[int, Connection]: ...
    @property
    def link(self) -> RoomLink | None: ...


class PresenceUpkeep:
    """The awareness loop and the announced claims of one room."""

    def __init__(self, room: _Room) -> None:
        self._room = room
        self._wake = anyio.Event()

    def changed(self) -> None:
        """Awareness changed: the loop sends the changes within one tick."""
        self._wake.set()

    async def run(self) -> None:
        settings = self._room.settings
        tick = settings.awareness_tick
        check_every = max(0.5, min(5.0, settings.awareness_timeout / 10))
        while True:
            with anyio.move_on_after(check_every):
                await self._wake.wait()
                await anyio.sleep(tick)  # coalesce changes arriving within one tick
            self._wake = anyio.Event()
            self._drop_silent()
            self._room.awareness.expire()
            self.flush()

    def flush(self) -> None:
        room = self._room
        frames = room.awareness.take_changes()
        if frames and room.link is not None:
            room.link.awareness(frames)
        # Sent to every peer, the sender included: y-websocket providers count any
        # received message as a sign of life, and a lone client must not time out.
        for frame in frames:
            for peer in list(room.connections.values()):
                peer.enqueue(frame)

    def _drop_silent(self) -> None:
        deadline = time.monotonic() - self._room.settings.awareness_timeout
        for conn in list(self._room.connections.values()):
            if conn.last_seen < deadline:
                conn.fail(SilentPeer("no message within the awareness timeout"))

    def claim_announced(self, conn: Connection, pid: str) -> bool:
        """Claim the client ids participant ``pid`` announces in awareness, before it writes.

        True when a claim was made: it waits for a commit (the next batch's, or one of
        its own). Raises TooManyMessages past the participant's unwritten claims cap.
        """
        client_ids = self._room.client_ids
        if all(client_ids.owner(cid) == pid for cid in conn.awareness_ids):
            return False  # the common case: every announced id is already ours
        state = decode_state_vector(self._room.doc.get_state())
        claims = client_ids.check_announced(conn.awareness_ids, state, pid)
        if claims:
            # Claims are durable and never expire, so the ids claimed without a write
            # under them are bounded per participant (a page announces one per load).
            held = client_ids.unwritten(pid, state)
            cap = self._room.settings.max_announced_claims
            if held + len(claims) > cap:
                raise TooManyMessages(f"you have announced {cap} client ids without writing under them; reload less")
        client_ids.claim(claims)
        return bool(claims)
