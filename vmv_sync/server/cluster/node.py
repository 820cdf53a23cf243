"""One server process as a node of a cluster: owner or relay of each workshop it serves.

The design (docs/scaling.md): one authority per workshop, fenced. The first node
that serves a workshop takes its lease in Redis and claims a new fencing epoch in the
store; its :class:`~vmv_sync.server.rooms.Room` judges and commits every update of
the workshop, from its own clients and, through Redis, from everyone else's. The
other nodes run a :class:`~vmv_sync.server.cluster.relay.RelayRoom`.

This object owns the node-wide tasks (one each, whatever the number of workshops):

- the heartbeat and the renewal of every lease held here (one script call); a lease
  lost, or not renewed for 80% of its length (Redis away, the process paused), makes
  its room stand down: clients reconnect (1012), the fence refuses anything it still
  tries to commit;
- the check that each relayed workshop's owner still holds its lease (one MGET); a
  changed or expired lease makes the relay stand down, its clients reconnect, and
  whichever node they reach first takes the lease and loads from the store;
- the reader of this node's ``to`` stream (sync markers, closes, edit replies);
- the control channel (revocations), a pub/sub subscription re-made after every loss.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from ...config import Settings
from ...errors import ConfigError, ServerError, Unauthenticated
from ...storage import StoreBackend
from ..rooms import Room
from .bus import REDIS_ERRORS, Bus, follow
from .errors import Moved
from .guesses import SharedGuesses
from .lease import HEARTBEAT_EVERY, Leases
from .owner import OwnerLink
from .relay import RelayRoom
from .streams import Streams

if TYPE_CHECKING:
    from ..auth import AccessRegistry
    from ..manager import RoomManager

__all__ = ("Cluster", "default_node_id")

logger = logging.getLogger(__name__)

#: seconds between two checks that relayed workshops' owners still hold their leases
_OWNER_CHECK = 0.5


def _link(room: Room) -> OwnerLink:
    assert isinstance(room.link, OwnerLink)
    return room.link


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Cluster:
    """``async with Cluster(settings, store) as cluster:``; then :meth:`attach` the manager."""

    def __init__(self, settings: Settings, store: StoreBackend) -> None:
        if settings.redis_url is None:
            raise ConfigError("the cluster needs redis_url")
        if settings.db in ("memory:", ":memory:"):
            raise ConfigError("several processes cannot share a memory: store; use postgresql://...")
        self.settings = settings
        self.store = store
        self.node = settings.node_id or default_node_id()
        self.bus = Bus(settings.redis_url, settings.cluster_prefix, self.node, settings.cluster_stream_length)
        self.leases = Leases(self.bus, settings.cluster_lease_seconds)
        #: the one reader of this process's workshop streams
        self.streams = Streams(self.bus)
        #: wrong invite codes per workshop, counted over the cluster (a security limit)
        self.guesses = SharedGuesses(self.bus, settings.invite_guess_rate, settings.invite_guess_burst)
        self._manager: RoomManager | None = None
        self.registry: AccessRegistry | None = None
        self._tg: TaskGroup | None = None
        self._control = self.bus.key("control", "all")

    @property
    def manager(self) -> RoomManager:
        assert self._manager is not None, "Cluster.attach was not called"
        return self._manager

    def attach(self, manager: RoomManager, registry: AccessRegistry) -> None:
        self._manager = manager
        self.registry = registry

    async def __aenter__(self) -> Cluster:
        try:
            await self.bus.redis.ping()
            if await self.bus.redis.exists(self.bus.key("node", self.node)):
                # a process that just ended (its heartbeat lasts 2 s), or a second process
                # under the same name: the latter would take the other's messages
                logger.warning("node id %s was alive a moment ago: each process needs its own --node-id", self.node)
        except REDIS_ERRORS as exc:  # not fatal: the node serves once Redis answers
            logger.warning("Redis does not answer at start (%s); workshops open once it does", exc)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        to_after = b"0-0"
        try:
            to_after = await self.bus.last_id(self.bus.key("to", self.node))
        except REDIS_ERRORS:
            pass
        self._tg.start_soon(self.streams.run)
        self._tg.start_soon(self._renew_loop)
        self._tg.start_soon(self._owner_check_loop)
        self._tg.start_soon(
            lambda: follow(
                self.bus, self.bus.key("to", self.node), to_after, self._on_direct, what=f"node={self.node} to"
            )
        )
        self._tg.start_soon(self._control_loop)
        logger.info(
            "cluster node %s on Redis (prefix %s, lease %.1f s)",
            self.node,
            self.settings.cluster_prefix,
            self.settings.cluster_lease_seconds,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(1.0):
                try:  # a clean exit: owners drop what is left of our clients at once
                    await self.bus.redis.delete(self.bus.key("node", self.node))
                except REDIS_ERRORS:
                    pass
            await self.bus.aclose()

    # -- which room: owner or relay ---------------------------------------------------
    async def new_room(self, workshop_id: str) -> Room:
        """The room to serve ``workshop_id`` here: the owner's if the lease is free, else a relay."""
        try:
            for _ in range(3):
                in_after = await self.bus.last_id(self.bus.key("in", workshop_id))
                if await self.leases.try_acquire(workshop_id):
                    try:
                        epoch = await self.store.claim_epoch(workshop_id)
                    except BaseException:
                        with anyio.CancelScope(shield=True):
                            await self.leases.release(workshop_id)
                        raise
                    room = Room(
                        workshop_id, self.manager.store, self.settings, self.manager.metrics, self.manager.on_commit
                    )
                    room.link = OwnerLink(self, room, epoch, in_after)
                    logger.info("workshop=%s owned by this node (epoch %d)", workshop_id, epoch)
                    return room
                (owner,) = await self.leases.owners([workshop_id])
                if owner == self.node:
                    await self.leases.release(workshop_id)  # ours but no room here: a leftover
                elif owner is not None:
                    return RelayRoom(workshop_id, self, owner)
        except REDIS_ERRORS as exc:
            raise ServerError("the cluster's Redis does not answer; try again") from exc
        raise ServerError(f"workshop {workshop_id}: no owner could be settled; try again")

    def revoked(self, workshop_id: str, participant_id: str) -> None:
        """A participant was removed here: every other node closes its sockets too."""
        if self._tg is not None:
            self._tg.start_soon(self._publish_revoked, workshop_id, participant_id)

    async def _publish_revoked(self, workshop_id: str, participant_id: str) -> None:
        message = json.dumps({"t": "revoke", "w": workshop_id, "p": participant_id, "n": self.node})
        try:
            await self.bus.redis.publish(self._control, message)
        except REDIS_ERRORS as exc:
            # the removal is in the store: other nodes refuse the participant at its next
            # connect, and re-read the removals of their workshops once Redis is back
            logger.warning("workshop=%s revocation not broadcast (%s)", workshop_id, exc)

    # -- node-wide tasks ----------------------------------------------------------------
    def _owned(self) -> list[Room]:
        if self._manager is None:
            return []
        return [r for r in self._manager.rooms.values() if r.link is not None and not r.closing]

    def _relays(self) -> list[RelayRoom]:
        if self._manager is None:
            return []
        return [r for r in self._manager.rooms.values() if isinstance(r, RelayRoom) and not r.closing]

    async def _renew_loop(self) -> None:
        ttl = self.settings.cluster_lease_seconds
        every = min(ttl / 4, HEARTBEAT_EVERY)
        while True:
            await anyio.sleep(every)
            owned = self._owned()
            started = time.monotonic()
            try:
                await self.leases.beat()
                held = await self.leases.renew([r.workshop_id for r in owned])
            except REDIS_ERRORS as exc:
                for room in owned:
                    if _link(room).renewed_at < started - ttl * 0.8:
                        room.end(Moved(f"this server lost Redis ({type(exc).__name__}); reconnect"))
                continue
            for room, ok in zip(owned, held, strict=True):
                link = _link(room)
                # a renewal that succeeds after most of a lease without one (the process was
                # paused or starved) proves nothing about the gap: a successor may have worked
                if ok and started - link.renewed_at <= ttl * 0.8:
                    link.renewed_at = started
                    continue
                logger.warning("workshop=%s lease lost; the room stands down", room.workshop_id)
                room.end(Moved("the workshop moved to another server process; reconnect"))

    async def _owner_check_loop(self) -> None:
        while True:
            await anyio.sleep(_OWNER_CHECK)
            relays = self._relays()
            if not relays:
                continue
            try:
                owners = await self.leases.owners([r.workshop_id for r in relays])
            except REDIS_ERRORS:
                owners = [None] * len(relays)  # cannot reach the owner either: stand down
            for room, owner in zip(relays, owners, strict=True):
                if owner != room.owner:
                    room.stand_down(Moved("the workshop's owner changed; reconnect"))

    async def _on_direct(self, fields: dict[bytes, bytes]) -> None:
        if self._manager is None:
            return
        room = self._manager.rooms.get(fields[b"w"].decode())
        if not isinstance(room, RelayRoom):
            return
        kind = fields[b"k"]
        if kind == b"s":
            room.sync_marker(int(fields[b"c"]), int(fields[b"q"]))
        elif kind == b"x":
            room.remote_close(int(fields[b"c"]), int(fields[b"code"]), fields[b"why"].decode(errors="replace"))
        elif kind == b"r":
            room.edit_replied(fields[b"r"].decode(), fields[b"err"].decode(errors="replace"))
        elif kind == b"a":
            room.awareness_frames(fields)

    async def _control_loop(self) -> None:
        """Revocations from other nodes; the subscription is re-made after any loss."""
        pause = 0.05
        while True:
            try:
                pubsub: Any = self.bus.redis.pubsub()
                try:
                    await pubsub.subscribe(self._control)
                    pause = 0.05
                    await self._recheck_revocations()  # what was broadcast while we could not hear
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None:
                            await self._on_control(message.get("data"))
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                        await pubsub.aclose()
            except REDIS_ERRORS as exc:
                logger.debug("control channel lost (%s); resubscribing", exc)
                await anyio.sleep(pause)
                pause = min(1.0, pause * 2)

    async def _on_control(self, data: Any) -> None:
        try:
            message = json.loads(data)
            workshop_id, participant_id = message["w"], message["p"]
        except (ValueError, TypeError, KeyError):
            logger.warning("control channel: unreadable message skipped")
            return
        if message.get("t") != "revoke" or message.get("n") == self.node:
            return
        await self._close_revoked(workshop_id, participant_id)

    async def _close_revoked(self, workshop_id: str, participant_id: str) -> None:
        if self.registry is not None:
            # the registry's cached set for the workshop (read from the store once):
            # every frame of this process checks it from now on
            (await self.registry.load_revoked(workshop_id)).add(participant_id)
        if self._manager is not None:
            self._manager.close_participant(
                workshop_id, participant_id, Unauthenticated("you were removed from this workshop"), broadcast=False
            )

    async def _recheck_revocations(self) -> None:
        if self._manager is None:
            return
        for workshop_id in list(self._manager.rooms):
            try:
                revoked = await self.store.revoked(workshop_id)
            except Exception:
                logger.exception("workshop=%s could not re-read removals", workshop_id)
                continue
            for participant_id in revoked:
                await self._close_revoked(workshop_id, participant_id)
