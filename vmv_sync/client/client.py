"""``WorkshopClient``: an offline-first replica of one workshop, synced when it can be.

The replica comes first: entering the client loads the document from a local
SQLite file and every action works at once, online or not; each local edit is
committed to that file before the action returns. Alongside, a connector keeps a
:class:`~vmv_sync.client.session.Session` to the server when it can (sync both
ways by state vector, relay live, renew awareness) and reconnects with exponential
backoff and full jitter after any loss, forever, until closed. The client is the
session's :class:`~vmv_sync.client.session.SessionHost`.

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

import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from pycrdt import Doc

from ..errors import ClientError, InvalidWorkshopId
from ..ids import is_workshop_id
from ..presence import Cursor, PresenceState, PresenceUser, color_for
from ..protocol import AwarenessEntry
from ..schema import ROLES, is_stage
from ..storage import Store
from .backoff import Backoff
from .events import ChangeHub, ChangeKind, ChangeStream, ConnectionState, EventStream
from .outbox import LocalReplica
from .presence import AwarenessTable, LocalAwareness, presence_events
from .recovery import Refused
from .replica import ReplicaDocument
from .session import Failure, Session, run_session
from .views import WorkshopViews
from .workshop import WorkshopActions

__all__ = ("WorkshopClient", "workshop_url", "token_claims")

logger = logging.getLogger(__name__)

T = TypeVar("T")



def workshop_url(url_base: str, workshop_id: str, token: str | None) -> str:
    """``ws://HOST:PORT/workshops/ID?saved=1[&token=...]`` from a base URL.

    ``url_base`` may be ``ws://HOST:PORT``, ``ws://HOST:PORT/workshops`` or the
    ``http(s)://`` form of either.
    """
    base = url_base.rstrip("/")
    if base.startswith("http://") or base.startswith("https://"):
        base = "ws" + base[4:]
    if not base.endswith("/workshops"):
        base += "/workshops"
    url = f"{base}/{workshop_id}?saved=1"
    if token:
        url += "&token=" + quote(token, safe="")
    return url


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a workshop token, read without checking the signature.

    The client only needs to know who it is; the server verifies the token.
    """
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise ClientError("the token is not a valid JWT") from exc
    return claims if isinstance(claims, dict) else {}


class WorkshopClient(ReplicaDocument, WorkshopActions, WorkshopViews):
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
    ) -> None:
        if not is_workshop_id(workshop_id):
            raise InvalidWorkshopId(str(workshop_id))
        if participant_id is None and token is not None:
            claims = token_claims(token)
            participant_id = claims.get("sub")
            name = name if name is not None else claims.get("name")
            role = claims.get("role", role)
        if not isinstance(participant_id, str) or not participant_id:
            raise ClientError("participant_id must be a non-empty string (or pass a token)")
        if role not in ROLES:
            raise ClientError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
        self.workshop_id = workshop_id
        self.participant_id = participant_id
        self.name = name if name is not None else participant_id
        self.role = role
        self.token = token
        self.url = workshop_url(url_base, workshop_id, token)
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self._hub = ChangeHub()
        self._awareness = AwarenessTable()
        replica = LocalReplica(workshop_id, path=store_path, store=store, compact_updates=compact_updates)
        doc: Doc[Any] = Doc(client_id=client_id) if client_id is not None else Doc()
        user = PresenceUser(participant_id, self.name, color or color_for(participant_id), role)
        me = LocalAwareness(doc.client_id, PresenceState(user=user))
        self._init_replica(doc, replica, me, backoff or Backoff(), rng or random.Random(), connect)
        self._stack = AsyncExitStack()
        self._tg: anyio.abc.TaskGroup | None = None
        #: the connection state; also see :attr:`connected` and friends
        self.state = ConnectionState.OFFLINE
        #: the last connection failure, as a sentence; cleared on a successful sync
        self.last_error: str | None = None
        #: the close code of the last connection, if the server sent one
        self.last_close_code: int | None = None
        #: monotonic time the last established connection was lost
        self.disconnected_at: float | None = None
        #: what every recovery from a refusal did, one sentence each (oldest first)
        self.recoveries: deque[str] = deque(maxlen=100)
        #: local edits that will never reach the server; :meth:`wait_saved` raises while any
        #: is listed (clear the list once handled)
        self.refused: list[Refused] = []

    @property
    def backoff(self) -> Backoff:
        return self._connector.backoff

    @property
    def connection_attempts(self) -> deque[float]:
        """Monotonic time of every connection attempt (diagnostics, tests)."""
        return self._connector.attempts

    @property
    def cursor_sends(self) -> deque[float]:
        """Monotonic times at which a cursor update was sent (throttle evidence)."""
        return self._activity.cursor_sends

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> WorkshopClient:
        try:
            await self._stack.enter_async_context(self._replica)
            parts = await self._replica.load()
            self._bind(self.doc, parts)
            self._stack.callback(self._unbind)
            self._tg = await self._stack.enter_async_context(anyio.create_task_group())
            self._tg.start_soon(self._connector.run)
            self._activity.start(self._tg)
            self._tg.start_soon(self._apply_held_soon)
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
        self._connector.want_online = False
        session = self._session
        if session is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(3):
                await session.close_cleanly(self._me.removal_frame())
        self._set_state(ConnectionState.CLOSED)
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
        return self._connector.permanent

    def _set_state(self, state: ConnectionState) -> None:
        if self.state is not state:
            logger.debug("workshop=%s client=%s %s", self.workshop_id, self.participant_id, state.value)
            self.state = state
            self._hub.notify("connection")

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
        self._fruitless = 0
        if self._session is not None and self._tg is not None:
            self._tg.start_soon(self._session.abort_quietly)
        self._connector.wake(resume=True)

    async def disconnect(self) -> None:
        """Go offline and stay offline until :meth:`reconnect` (a train tunnel on demand)."""
        self._connector.want_online = False
        session = self._session
        if session is not None:
            with anyio.move_on_after(3):
                await session.close_cleanly(self._me.removal_frame())
        self._connector.stop()
        with anyio.fail_after(5):
            while self._session is not None:
                await self._hub.wait_any()

    async def _attempt(self) -> bool:
        """One connection, start to end (the connector's ``attempt``)."""
        self._set_state(ConnectionState.CONNECTING)
        session = Session(
            self.doc, self._replica, self._me, self, heartbeat=self.heartbeat, label=self.workshop_id
        )
        session.recovery = self._recovery is not None
        try:
            await run_session(session, self.url, self.connect_timeout)
        finally:
            self._session = None
            established = session.synced
            if established:
                self.disconnected_at = time.monotonic()
            self._set_state(ConnectionState.OFFLINE)
            self._presence_changed(self._awareness.clear)
        if self._refusal is not None:
            with anyio.CancelScope(shield=True):
                await self._rebuild()
        return established

    # -- the session's host ----------------------------------------------------------

    def on_open(self, session: Session) -> None:
        self._session = session
        self._hub.notify("connection")

    def on_awareness(self, entries: list[AwarenessEntry]) -> None:
        self._presence_changed(lambda: self._awareness.apply(entries))

    def on_failed(self, session: Session, failure: Failure) -> None:
        self.last_error = failure.message
        self.last_close_code = failure.code
        if failure.code == 4403 and self._start_recovery(session, failure):
            pass
        elif failure.permanent:
            self._connector.permanent = True
            logger.warning("workshop=%s refused permanently: %s", self.workshop_id, failure.message)
        self._hub.notify("connection")

    def _synced(self) -> None:
        self.last_error = None
        self._set_state(ConnectionState.CONNECTED)

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

    def _notify(self, kind: ChangeKind) -> None:
        self._hub.notify(kind)

    # -- awareness ---------------------------------------------------------------------

    def _presence_changed(self, apply: Callable[[], bool]) -> None:
        before = self._awareness.online()
        if not apply():
            return
        for event in presence_events(before, self._awareness.online()):
            self._hub.publish(event)
        self._activity.presence_changed()
        self._hub.notify("presence")

    def _send_me(self) -> None:
        if self._session is not None:
            self._session.send_awareness(self._me.frame())

    async def set_stage_presence(self, stage: str) -> None:
        """Tell others which stage this client is looking at (awareness ``stage``)."""
        if not is_stage(stage):
            raise ClientError(f"unknown stage {stage!r}")
        self._me.update(stage=stage)
        self._send_me()

    def set_typing(self, typing: bool = True) -> None:
        """Call on every keystroke; sent at most every 300 ms, cleared 3 s after the last."""
        self._activity.set_typing(typing)

    def move_cursor(self, x: float, y: float, stage: str | None = None) -> None:
        """Move this client's pointer; sent at most 10 times per second, the last one always."""
        where = stage or self._me.state.stage or self.stage or ""
        self._activity.move_cursor(Cursor(float(x), float(y), where))

    def hide_cursor(self) -> None:
        self._activity.hide_cursor()
