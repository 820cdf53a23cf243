"""The room manager: loads rooms on first use, unloads them when idle, flushes on shutdown.

Concurrent first connections to one workshop share a single load (the stock room
could leave late joiners hanging); a room being unloaded finishes its queued writes
before the next load of that workshop reads the store.

Each room runs in a task of the manager's task group that never raises: a room that
fails (a failed commit, a bug) closes its own connections with 1011, is dropped, and
loads again on the next connection; the manager and every other room go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..config import Settings
from ..errors import CloseError, GoingAway, ServerError, StorageError
from ..storage import StaleEpoch, Store
from .budgets import Budgets
from .metrics import Metrics
from .ratelimits import Buckets
from .rooms import Room

__all__ = ("RoomManager",)

logger = logging.getLogger(__name__)

#: a room failing within this many seconds of the last failure keeps /healthz unhealthy
_UNHEALTHY_FOR = 30.0
#: passes of ``acquire`` before it gives up on a workshop that keeps being unloaded under it
_ACQUIRE_PASSES = 100


class RoomMaker(Protocol):
    """Decides, for several processes, which kind of room serves a workshop (server/cluster/)."""

    async def new_room(self, workshop_id: str) -> Room:
        """The owner's room if this process takes the workshop's lease, else a relay."""
        ...

    def revoked(self, workshop_id: str, participant_id: str) -> None:
        """Tell the other processes to close a removed participant's sockets."""
        ...

    @property
    def guesses(self) -> SharedGuessLimit:
        """Wrong invite codes per workshop, counted over every process."""
        ...


class SharedGuessLimit(Protocol):
    """A per-workshop bucket shared by the processes; ``local`` decides when it cannot be reached."""

    async def take(self, workshop_id: str, local: Buckets) -> None: ...

    async def refund(self, workshop_id: str, local: Buckets) -> None: ...


class RoomManager:
    """Loads rooms on first use, unloads them when idle, flushes them on shutdown.

    Used as ``async with RoomManager(store, settings) as manager:``.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        cluster: RoomMaker | None = None,
        metrics: Metrics | None = None,
        on_commit: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        #: given to every room: its commits and compactions are timed there
        self.metrics = metrics
        #: given to every room: told each committed workshop (the webhooks' watcher)
        self.on_commit = on_commit
        #: None on a single process (the default); else makes owner or relay rooms
        self.cluster = cluster
        self._deciding: dict[str, anyio.Event] = {}
        self.rooms: dict[str, Room] = {}
        #: every participant's budgets; they outlive connections and rooms (budgets.py)
        self.budgets = Budgets(settings)
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self._closed = False
        #: monotonic time and text of the last room failure (``/healthz``)
        self.last_failure: tuple[float, str] | None = None

    async def __aenter__(self) -> RoomManager:
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.aclose()
        finally:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()  # pending idle-unload timers
            self._tg = None
            await self._stack.aclose()

    @property
    def running(self) -> bool:
        return self._tg is not None and not self._closed

    def health(self) -> tuple[bool, str]:
        """(healthy, why): unhealthy once closed, or while rooms keep failing (say, a full disk)."""
        if not self.running:
            return False, "the room manager is not running"
        if self.last_failure is not None and time.monotonic() - self.last_failure[0] < _UNHEALTHY_FOR:
            return False, f"a workshop failed recently: {self.last_failure[1]}"
        return True, "ok"

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

    def close_participant(
        self, workshop_id: str, participant_id: str, error: CloseError, *, broadcast: bool = True
    ) -> int:
        """Close every open connection of one participant; returns how many (here).

        Also drops what the participant held of the workshop's budgets. With several
        processes, ``broadcast`` tells the others to do the same at once.
        """
        if broadcast and self.cluster is not None:
            self.cluster.revoked(workshop_id, participant_id)
        self.budgets.forget(workshop_id, participant_id)
        room = self.rooms.get(workshop_id)
        if room is None:
            return 0
        closing = [c for c in room.connections.values() if c.principal.participant_id == participant_id]
        for conn in closing:
            conn.fail(error)
        return len(closing)

    async def acquire(self, workshop_id: str) -> Room:
        """The loaded room for ``workshop_id``; concurrent callers share one load.

        Raises:
            ServerError: the manager is not running, or the workshop cannot be loaded now.
        """
        # Each pass either returns, raises, or follows a room that was closing (waited out
        # until it stopped) or a cluster decision another caller made meanwhile: the
        # next pass finds a room or makes one. Only a workshop loaded and unloaded again
        # under a waiting caller every time could run past the bound, which keeps that
        # caller from waiting forever instead (it is told to try again).
        for _ in range(_ACQUIRE_PASSES):
            if self._tg is None or self._closed:
                raise ServerError("the server is not accepting workshops (shutting down)")
            room = self.rooms.get(workshop_id)
            if room is None:
                if self.cluster is None:
                    room = Room(workshop_id, self.store, self.settings, self.metrics, self.on_commit)
                else:
                    made = await self._cluster_room(workshop_id)
                    if made is None:
                        continue  # another caller decided meanwhile: take its room
                    room = made
                self.rooms[workshop_id] = room
                room.refs += 1
                try:
                    await self._tg.start(self._run_room, room)
                except BaseException:
                    self._forget(room)
                    raise
                if room.load_error is not None:
                    self._forget(room)
                    raise ServerError(f"could not load workshop {workshop_id}; try again") from room.load_error
                return room
            if room.closing:
                await room.stopped.wait()
                self._forget(room)
                continue
            room.refs += 1
            await room.ready.wait()
            if room.load_error is not None:
                room.refs -= 1
                raise ServerError(f"could not load workshop {workshop_id}; try again") from room.load_error
            return room
        raise ServerError(f"workshop {workshop_id} is being unloaded; try again")

    async def _cluster_room(self, workshop_id: str) -> Room | None:
        """The cluster's room for a workshop; None when another caller was deciding it."""
        assert self.cluster is not None
        deciding = self._deciding.get(workshop_id)
        if deciding is not None:
            await deciding.wait()
            return None
        self._deciding[workshop_id] = event = anyio.Event()
        try:
            return await self.cluster.new_room(workshop_id)
        finally:
            del self._deciding[workshop_id]
            event.set()

    def release(self, room: Room) -> None:
        room.refs -= 1
        if room.refs == 0 and self._tg is not None and not room.closing:
            self._tg.start_soon(self._unload_when_idle, room)

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.workshop_id) is room:
            del self.rooms[room.workshop_id]

    async def _run_room(self, room: Room, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run one room to its end; whatever it raises stays here."""
        try:
            await room.run(task_status=task_status)
        except Exception as exc:  # Room.run handles its own failures; this is the last guard
            room.failure = room.failure or exc
            logger.error("workshop=%s room task failed", room.workshop_id, exc_info=exc)
        finally:
            failure = room.failure or room.load_error
            if failure is not None and not isinstance(failure, StaleEpoch):  # a successor owns it: not a fault
                kind = "storage" if isinstance(failure, StorageError) else type(failure).__name__
                self.last_failure = (time.monotonic(), f"{room.workshop_id}: {kind}")
            if room.failure is not None:
                self._forget(room)

    async def _unload_when_idle(self, room: Room) -> None:
        await anyio.sleep(self.settings.room_idle_seconds)
        if room.refs != 0 or room.closing or self.rooms.get(room.workshop_id) is not room:
            return
        await room.stop()
        self._forget(room)
        logger.info("workshop=%s unloaded after %.0f s idle", room.workshop_id, self.settings.room_idle_seconds)
