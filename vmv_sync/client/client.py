"""``WorkshopClient``: an offline-first replica of one workshop, synced when it can be.

The replica comes first: entering the client loads the document from a local
SQLite file and every action works at once, online or not; each local edit is
committed to that file before the action returns. Alongside, a connector keeps a
:class:`~vmv_sync.client.session.Session` to the server when it can (sync both
ways by state vector, relay live, renew awareness) and reconnects with exponential
backoff and full jitter after any loss, forever, until closed.

The client is a composition, not a hierarchy of state: a
:class:`~vmv_sync.client.replica.LocalReplica` (the local log), a
:class:`~vmv_sync.client.document.LiveDocument` (the document and the rules of
writing to it), a :class:`~vmv_sync.client.link.Link` (the connection: one channel
and one :class:`~vmv_sync.client.session.Session` per attempt, reconnected by a
:class:`~vmv_sync.client.connector.Connector`, and the session's host), an
awareness table and the throttles of :mod:`~vmv_sync.client.activity`. Each part
is reached through its public methods only. Channels come from a factory:
WebSockets to ``url_base`` by default (client/websocket.py), anything else given
as ``channels=`` (tests use in-memory ones).

What the client promises (docs/client.md): an action is durable locally when it
returns; ``wait_saved()`` returns once the server has committed it, or raises once
it never will be (a permanent refusal, a refused edit). Actions needing a
container the server has not delivered yet are held as intents; a refused client
id or edit is recovered from (client/recovery.py).

Example:
    >>> async with WorkshopClient("ws://127.0.0.1:8000", "w1", store_path="me.sqlite3",
    ...                           participant_id="p1", name="Ann") as client:  # doctest: +SKIP
    ...     await client.join()
    ...     await client.post_message("hello")     # durable locally on return
    ...     await client.wait_saved(timeout=10)    # and committed by the server
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, TypeVar

import anyio
import anyio.abc
from pycrdt import Doc

from ..errors import ClientError, InvalidWorkshopId
from ..ids import is_workshop_id
from ..presence import Cursor, PresenceState, PresenceUser, color_for
from ..schema import is_stage
from ..storage import Store
from .activity import Activity
from .backoff import Backoff
from .channel import Channel, ChannelFactory
from .document import LiveDocument
from .events import ChangeHub, ChangeStream, ConnectionState, EventStream
from .identity import identity, workshop_url
from .intents import Intent
from .link import Link
from .presence import AwarenessTable, LocalAwareness
from .recovery import Refused
from .replica import LocalReplica
from .views import WorkshopViews
from .websocket import websocket_channels
from .workshop import WorkshopActions

__all__ = ("WorkshopClient",)

T = TypeVar("T")


class WorkshopClient(WorkshopActions, WorkshopViews):
    """An offline-first participant (or facilitator, bot, observer) of one workshop.

    Args:
        url_base: the server, e.g. ``ws://127.0.0.1:8000`` (see :func:`workshop_url`).
        workshop_id: 1 to 64 characters of ``A-Z a-z 0-9 _ -``.
        store_path: the local SQLite file of the replica (created if missing); one
            process at a time per file. Or give ``store`` (any Store, not entered).
        participant_id, name, role, color: who this client is (awareness ``user``,
            and the author of its actions).
        token: sent as the ``token`` query parameter (contract section 6).
        backoff: reconnection delays; ``connect_timeout``: per attempt.
        heartbeat: seconds between awareness renewals (the server drops a connection
            silent for 30 s).
        rng: the jitter's random source (tests may seed it).
        compact_updates: compact the local replica log past this many rows.
        connect: False to start offline (call :meth:`reconnect` to go online).
        client_id: the Yjs client id of this run. Leave it out: a fresh random one is
            drawn on every start, so clocks are never reused across restarts. Tests
            set it to provoke a client-id collision.
        channels: opens one channel per connection attempt (client/channel.py). Leave
            it out for WebSockets to ``url_base``; tests pass in-memory channels.
    """

    def __init__(
        self,
        url_base: str,
        workshop_id: str,
        *,
        participant_id: str | None = None,
        store_path: str | os.PathLike[str] | None = None,
        store: Store | None = None,
        name: str | None = None,
        role: str = "participant",
        color: str | None = None,
        token: str | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        heartbeat: float = 15.0,
        rng: random.Random | None = None,
        compact_updates: int = 500,
        connect: bool = True,
        client_id: int | None = None,
        channels: ChannelFactory | None = None,
    ) -> None:
        if not is_workshop_id(workshop_id):
            raise InvalidWorkshopId(str(workshop_id))
        participant_id, name, role = identity(participant_id, name, role, token)
        self.workshop_id = workshop_id
        self.participant_id = participant_id
        self.name = name
        self.role = role
        self.token = token
        self.url = workshop_url(url_base, workshop_id, token)
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self._hub = ChangeHub()
        self._peers = AwarenessTable()
        self._replica = LocalReplica(workshop_id, path=store_path, store=store, compact_updates=compact_updates)
        doc: Doc[Any] = Doc(client_id=client_id) if client_id is not None else Doc()
        user = PresenceUser(participant_id, self.name, color or color_for(participant_id), role)
        self._me = LocalAwareness(doc.client_id, PresenceState(user=user))
        self._link: Link
        self._activity: Activity
        self._document = LiveDocument(
            doc, self._replica, self._me, self._hub, lambda: self._link.session,
            workshop_id=workshop_id, participant_id=participant_id,
        )  # fmt: skip
        self._link = Link(
            self._document, self._replica, self._me, self._peers, self._hub, channels or self._websocket,
            presence_changed=lambda: self._activity.presence_changed(), backoff=backoff or Backoff(),
            rng=rng or random.Random(), online=connect, heartbeat=heartbeat, label=workshop_id,
        )  # fmt: skip
        self._activity = Activity(
            self._me, self._link.send_awareness, lambda: self._link.session is not None, self._peers,
            lambda: self._hub.notify("presence"),
        )  # fmt: skip
        self._stack = AsyncExitStack()
        self._tg: anyio.abc.TaskGroup | None = None

    @property
    def doc(self) -> Doc[Any]:
        """The live document (a recovery replaces it: read it from the client each time)."""
        return self._document.doc

    @property
    def recoveries(self) -> deque[str]:
        """What every recovery from a refusal did, one sentence each (oldest first)."""
        return self._document.recoveries

    @property
    def refused(self) -> list[Refused]:
        """Local edits that will never reach the server; :meth:`wait_saved` raises while
        any is listed (clear the list once handled)."""
        return self._document.refused

    @refused.setter
    def refused(self, value: list[Refused]) -> None:
        self._document.refused[:] = value

    @property
    def backoff(self) -> Backoff:
        return self._link.connector.backoff

    @property
    def connection_attempts(self) -> deque[float]:
        """Monotonic time of every connection attempt (diagnostics, tests)."""
        return self._link.connector.attempts

    @property
    def cursor_sends(self) -> deque[float]:
        """Monotonic times at which a cursor update was sent (throttle evidence)."""
        return self._activity.cursor_sends

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> WorkshopClient:
        try:
            await self._stack.enter_async_context(self._replica)
            self._document.open(await self._replica.load())
            self._stack.callback(self._document.close)
            self._tg = await self._stack.enter_async_context(anyio.create_task_group())
            self._tg.start_soon(self._link.run)
            self._activity.start(self._tg)
            self._tg.start_soon(self._document.apply_held)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Leave cleanly (awareness removed, socket closed), then close the store."""
        if self.state is ConnectionState.CLOSED:
            return
        await self._link.close()
        self._document.close()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._hub.close()
        # Not shielded: the task group in the stack must exit in its own scope; the
        # store shields its own final commit.
        await self._stack.aclose()

    @property
    def closed(self) -> bool:
        return self.state is ConnectionState.CLOSED

    # -- connection state ----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection state; also see :attr:`connected` and friends."""
        return self._link.state

    @property
    def last_error(self) -> str | None:
        """The last connection failure, as a sentence; cleared on a successful sync."""
        return self._link.last_error

    @property
    def last_close_code(self) -> int | None:
        """The close code of the last connection, if the server sent one."""
        return self._link.last_close_code

    @property
    def disconnected_at(self) -> float | None:
        """Monotonic time the last established connection was lost."""
        return self._link.disconnected_at

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    @property
    def connecting(self) -> bool:
        return self.state is ConnectionState.CONNECTING

    @property
    def offline(self) -> bool:
        return self.state in (ConnectionState.OFFLINE, ConnectionState.CLOSED)

    @property
    def gave_up(self) -> bool:
        """True after a permanent refusal (4401/4403): no retry until :meth:`reconnect`."""
        return self._link.connector.permanent

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected and synced; raises ClientError if refused permanently."""
        with anyio.fail_after(timeout):
            while not self.connected:
                if self.gave_up or self.state is ConnectionState.CLOSED:
                    raise ClientError(f"not connecting: {self.last_error or self.state.value}")
                await self._hub.wait_any()

    def reconnect(self) -> None:
        """Try to connect now: skips a running backoff, or drops and reopens a live link.

        Also resumes after :meth:`disconnect` or a permanent refusal (say, after a
        new ``token`` was set).
        """
        self.url = workshop_url(self.url.split("/workshops/")[0], self.workshop_id, self.token)
        self._document.forgive()
        self._link.reconnect()

    async def disconnect(self) -> None:
        """Go offline and stay offline until :meth:`reconnect` (a train tunnel on demand)."""
        await self._link.disconnect()

    async def refresh_token(self, token: str, *, timeout: float = 10.0) -> int | None:
        """Hand the live connection a fresh token, without dropping it; keep it for reconnects.

        The server closes a connection once its token expires (4401); a refresh before
        then moves that expiry (extension message 101, docs/auth.md). Connected: the
        token is sent, and once the server accepts it, it is stored and its ``exp``
        (unix s; 0 from a server with authentication off) returned. Offline (or while
        a connection is closing): the token is only stored, and ``None`` returned;
        the next connection carries it and the server checks it there.

        Raises ClientError when the server refuses it (another participant, role or
        workshop: 4403; invalid or expired: 4401), the connection ends first, or no
        answer comes within ``timeout`` seconds. Then the token is not stored: the
        client reconnects with the one it had (a refusal closed the connection, and
        says nothing of that one), pending edits travel again as after any drop.
        """
        if not token:
            raise ClientError("the token is empty")
        session = self._link.session
        if session is None or session.closing:
            self._set_token(token)
            return None
        exp = await session.refresh_token(token, timeout)
        self._set_token(token)
        return exp

    def _set_token(self, token: str) -> None:
        """The token (and the URL that carries it) of every later connection attempt."""
        self.token = token
        self.url = workshop_url(self.url.split("/workshops/")[0], self.workshop_id, token)

    def _websocket(self) -> AbstractAsyncContextManager[Channel]:
        """The default channel factory: a WebSocket to :attr:`url` (read at each attempt)."""
        return websocket_channels(self.url, self.connect_timeout)()

    # -- local edits -------------------------------------------------------------------

    async def edit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(doc, *args, **kwargs)`` as a local edit; returns its result.

        The updates it makes are committed to the local store before this returns
        (shielded from cancellation), then sent if connected. Use it for edits of your
        own on ``client.doc``; unlike the action methods such an edit has no intent, so
        it is never held and cannot be re-made after a refusal (docs/client.md).
        """
        return await self._document.edit(fn, *args, **kwargs)

    async def act(self, intent: Intent) -> None:
        """Apply a typed action now, or hold it until its container arrives."""
        await self._document.act(intent)

    # -- saved status ----------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        """Local actions the server has not yet confirmed as committed (0: all saved).

        Held intents (client/intents.py) count too.
        """
        return self._replica.pending_count

    @property
    def saved(self) -> bool:
        return self._replica.pending_count == 0

    async def wait_saved(self, timeout: float | None = None) -> None:
        """Return once the server has committed every local action made so far.

        Raises ClientError at once when that cannot happen: an edit was refused
        (listed in :attr:`refused`; clear the list to wait again), or the server
        refused the connection for good (4401 revoked, ...) with edits pending.
        Raises TimeoutError after ``timeout``.
        """

        def done() -> bool:
            if self.refused:
                raise ClientError(
                    f"{len(self.refused)} edit(s) refused: "
                    + "; ".join(f"{r.action}: {r.reason}" for r in self.refused[:3])
                )
            if self.gave_up and self._replica.pending_count:
                raise ClientError(
                    f"{self._replica.pending_count} edit(s) cannot be saved: {self.last_error or 'refused'}"
                )
            return self._replica.pending_count == 0

        await self.wait_for(done, timeout=timeout)

    # -- changes and events ------------------------------------------------------------

    def changes(self) -> ChangeStream:
        """Async iterator of coalesced :class:`~vmv_sync.client.Change` notices."""
        return self._hub.changes()

    def events(self) -> EventStream:
        """Async iterator of presence :class:`Join` / :class:`Leave`, one per participant."""
        return self._hub.events()

    @property
    def version(self) -> int:
        """Grows by one per change noticed (document, presence, connection, saved)."""
        return self._hub.version

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``predicate()`` is true, re-checked after every change.

        Raises ``TimeoutError`` after ``timeout`` seconds, ClientError if the client closes.
        """
        with anyio.fail_after(timeout):
            while not predicate():
                if self._hub.closed:
                    raise ClientError("the client closed while waiting")
                await self._hub.wait_any()

    # -- awareness ---------------------------------------------------------------------

    async def set_stage_presence(self, stage: str) -> None:
        """Tell others which stage this client is looking at (awareness ``stage``)."""
        if not is_stage(stage):
            raise ClientError(f"unknown stage {stage!r}")
        self._me.update(stage=stage)
        self._link.send_awareness()

    def set_typing(self, typing: bool = True) -> None:
        """Call on every keystroke; sent at most every 300 ms, cleared 3 s after the last."""
        self._activity.set_typing(typing)

    def move_cursor(self, x: float, y: float, stage: str | None = None) -> None:
        """Move this client's pointer; sent at most 10 times per second, the last one always."""
        where = stage or self._me.state.stage or self.stage or ""
        self._activity.move_cursor(Cursor(float(x), float(y), where))

    def hide_cursor(self) -> None:
        self._activity.hide_cursor()
