"""The room manager: loads rooms on first use, unloads them when idle, flushes on shutdown.

Concurrent first connections to one workshop share a single load (the stock room
could leave late joiners hanging); a room being unloaded finishes its queued writes
before the next load of that workshop reads the store.
"""

from __future__ import annotations

import logging

import anyio

from ..errors import CloseError, GoingAway, StorageError, VmvSyncError
from ..storage import Store
from .rooms import Room, RoomSettings

__all__ = ("RoomManager",)

logger = logging.getLogger(__name__)


class RoomManager:
    """Loads rooms on first use, unloads them when idle, flushes them on shutdown."""

    def __init__(self, store: Store, settings: RoomSettings) -> None:
        self.store = store
        self.settings = settings
        self.rooms: dict[str, Room] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = False

    async def __aenter__(self) -> RoomManager:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()  # pending idle-unload timers
        await self._tg.__aexit__(None, None, None)
        self._tg = None

    async def aclose(self) -> None:
        """Close every connection with 1001 and drain every room's pending updates.

        Safe to call from any task; new connections are refused from then on.
        """
        self._closed = True
        for room in list(self.rooms.values()):
            room.fail_all(GoingAway("the server is shutting down"))
        for room in list(self.rooms.values()):
            await room.stop()
        self.rooms.clear()

    def close_participant(self, workshop_id: str, participant_id: str, error: CloseError) -> int:
        """Close every open connection of one participant; returns how many."""
        room = self.rooms.get(workshop_id)
        if room is None:
            return 0
        closing = [c for c in room.connections.values() if c.principal.participant_id == participant_id]
        for conn in closing:
            conn.fail(error)
        return len(closing)

    async def acquire(self, workshop_id: str) -> Room:
        """The loaded room for ``workshop_id``; concurrent callers share one load."""
        if self._tg is None or self._closed:
            raise VmvSyncError("the room manager is not running")
        for _ in range(100):
            room = self.rooms.get(workshop_id)
            if room is None:
                room = Room(workshop_id, self.store, self.settings)
                self.rooms[workshop_id] = room
                room.refs += 1
                try:
                    await self._tg.start(room.run)
                except BaseException:
                    self.rooms.pop(workshop_id, None)
                    raise
                if room.load_error is not None:
                    self.rooms.pop(workshop_id, None)
                    raise StorageError(f"could not load workshop {workshop_id}") from room.load_error
                return room
            if room.closing:
                await room.stopped.wait()
                if self.rooms.get(workshop_id) is room:
                    del self.rooms[workshop_id]
                continue
            room.refs += 1
            await room.ready.wait()
            if room.load_error is not None:
                room.refs -= 1
                raise StorageError(f"could not load workshop {workshop_id}") from room.load_error
            return room
        raise VmvSyncError(f"workshop {workshop_id} is being unloaded; try again")

    def release(self, room: Room) -> None:
        room.refs -= 1
        if room.refs == 0 and self._tg is not None and not room.closing:
            self._tg.start_soon(self._unload_when_idle, room)

    async def _unload_when_idle(self, room: Room) -> None:
        await anyio.sleep(self.settings.idle_seconds)
        if room.refs != 0 or room.closing or self.rooms.get(room.workshop_id) is not room:
            return
        await room.stop()
        if self.rooms.get(room.workshop_id) is room:
            del self.rooms[room.workshop_id]
        logger.info("workshop=%s unloaded after %.0f s idle", room.workshop_id, self.settings.idle_seconds)

