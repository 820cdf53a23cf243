"""``WorkshopClient``: an offline-first replica of one workshop, synced when it can be.

The replica comes first: entering the client loads the document from a local
SQLite file and every action works at once, online or not; each local edit is
committed to that file before the action returns. Alongside, one task keeps a
WebSocket to the server when it can: sync both ways by state vector (only what
the other side lacks travels), relay live, renew awareness, and on any loss
reconnect with exponential backoff and full jitter, forever, until closed.

Saved status uses the server's ``saved`` extension (docs/protocol.md): for each
connection the client remembers which pending local edits every counted frame
carried, and the server's "your first N updates are committed" confirms them.

Example:
    >>> async with WorkshopClient("ws://127.0.0.1:8000", "w1", store_path="me.sqlite3",
    ...                           participant_id="p1", name="Ann") as client:  # doctest: +SKIP
    ...     await client.join()
    ...     await client.post_message("hello")     # durable locally on return
    ...     await client.wait_saved(timeout=10)    # and committed by the server
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import time
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from pycrdt import Doc, Subscription

from ..derived import DerivedTracker
from ..errors import ClientError, InvalidWorkshopId
from ..presence import (
    CURSOR_INTERVAL_SECONDS,
    TYPING_DEBOUNCE_SECONDS,
    TYPING_STALE_SECONDS,
    Cursor,
    PresenceState,
    PresenceUser,
    color_for,
    is_typing,
)
from ..schema import ROLES, WorkshopData, bind_roots, is_stage
from ..storage import Store
from .backoff import Backoff
from .events import ChangeHub, ChangeKind, ChangeStream, ConnectionState, EventStream
from .messages import MessageLog
from .outbox import LocalReplica
from .presence import AwarenessTable, LocalAwareness, presence_events
from .session import Session, run_session
from .views import WorkshopViews
from .workshop import WorkshopActions

__all__ = ("WorkshopClient",)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_WORKSHOP_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
    ) -> None:
        if not isinstance(workshop_id, str) or not _WORKSHOP_ID_RE.fullmatch(workshop_id):
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
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self._rng = rng or random.Random()
        self.doc: Doc[Any] = Doc()
        self._replica = LocalReplica(
            workshop_id, path=store_path, store=store, compact_updates=compact_updates
        )
        self._hub = ChangeHub()
        self._awareness = AwarenessTable()
        user = PresenceUser(participant_id, self.name, color or color_for(participant_id), role)
        self._me = LocalAwareness(self.doc.client_id, PresenceState(user=user))
        self._data: WorkshopData | None = None
        self._tracker: DerivedTracker
        self._messages: MessageLog
        # Kept referenced: pycrdt drops a subscription with the wrapper it was made on.
        self._roots = bind_roots(self.doc)
        self._subscription: Subscription | None = None
        self._remote = False
        self._capture: list[bytes] | None = None
        self._stray: list[bytes] = []
        self._stack = AsyncExitStack()
        self._tg: anyio.abc.TaskGroup | None = None
        self._session: Session | None = None
        self._want_online = connect
        self._permanent = False
        self._skip_backoff = False
        self._wake_connector = anyio.Event()
        self._wake_typing = anyio.Event()
        self._wake_cursor = anyio.Event()
        self._wake_presence = anyio.Event()
        self._typing_requested: float | None = None
        self._typing_sent = -math.inf
        self._typing_dirty = False
        self._cursor_target: Cursor | None = None
        self._cursor_sent = -math.inf
        #: the connection state; also see :attr:`connected` and friends
        self.state = ConnectionState.OFFLINE
        #: the last connection failure, as a sentence; cleared on a successful sync
        self.last_error: str | None = None
        #: the close code of the last connection, if the server sent one
        self.last_close_code: int | None = None
        #: monotonic time of every connection attempt (diagnostics, tests)
        self.connection_attempts: deque[float] = deque(maxlen=1000)
        #: monotonic time the last established connection was lost
        self.disconnected_at: float | None = None
        #: monotonic times at which a cursor update was sent (throttle evidence)
        self.cursor_sends: deque[float] = deque(maxlen=1000)

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> WorkshopClient:
        try:
            await self._stack.enter_async_context(self._replica)
            parts = await self._replica.load()
            self._apply_remote_sync(parts)
            self._subscription = self.doc.observe(self._on_doc_update)
            self._tracker = DerivedTracker(self.doc)
            self._stack.callback(self._tracker.close)
            self._messages = MessageLog(self._roots.messages)
            self._stack.callback(self._messages.close)
            self._tg = await self._stack.enter_async_context(anyio.create_task_group())
            self._tg.start_soon(self._run_connector)
            self._tg.start_soon(self._run_typing)
            self._tg.start_soon(self._run_cursor)
            self._tg.start_soon(self._run_presence_clock)
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
        self._want_online = False
        session = self._session
        if session is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(3):
                await session.close_cleanly(self._me.removal_frame())
        self._set_state(ConnectionState.CLOSED)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None
        self._hub.close()
        # Not shielded: the task group in the stack must exit in its own scope; the
        # store shields its own final commit.
        await self._stack.aclose()

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
        return self._permanent

    def _set_state(self, state: ConnectionState) -> None:
        if self.state is not state:
            logger.debug("workshop=%s client=%s %s", self.workshop_id, self.participant_id, state.value)
            self.state = state
            self._hub.notify("connection")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected and synced; raises ClientError if refused permanently."""
        with anyio.fail_after(timeout):
            while not self.connected:
                if self._permanent or self.state is ConnectionState.CLOSED:
                    raise ClientError(f"not connecting: {self.last_error or self.state.value}")
                await self._hub.wait_any()

    def reconnect(self) -> None:
        """Try to connect now: skips a running backoff, or drops and reopens a live link.

        Also resumes after :meth:`disconnect` or a permanent refusal (say, after a
        new ``token`` was set).
        """
        self._want_online = True
        self._permanent = False
        self._skip_backoff = True
        self.url = workshop_url(self.url.split("/workshops/")[0], self.workshop_id, self.token)
        if self._session is not None and self._tg is not None:
            self._tg.start_soon(self._session.abort_quietly)
        self._wake_connector.set()

    async def disconnect(self) -> None:
        """Go offline and stay offline until :meth:`reconnect` (a train tunnel on demand)."""
        self._want_online = False
        session = self._session
        if session is not None:
            with anyio.move_on_after(3):
                await session.close_cleanly(self._me.removal_frame())
        self._wake_connector.set()
        with anyio.fail_after(5):
            while self._session is not None:
                await self._hub.wait_any()

    def _wait_backoff(self, attempt: int) -> float:
        return self.backoff.delay(attempt, self._rng)

    async def _run_connector(self) -> None:
        failures = 0
        first = True
        while True:
            if not first or not self._want_online:
                delay = 0.0 if self._skip_backoff else self._wait_backoff(failures)
                if not self._want_online or self._permanent:
                    delay = math.inf
                self._wake_connector = anyio.Event()
                with anyio.move_on_after(delay):
                    await self._wake_connector.wait()
                if not self._want_online or (self._permanent and not self._skip_backoff):
                    continue
            first = False
            self._skip_backoff = False
            self.connection_attempts.append(time.monotonic())
            self._set_state(ConnectionState.CONNECTING)
            session = Session(self)
            try:
                await run_session(session, self.url, self.connect_timeout)
            finally:
                self._session = None
                established = session.synced
                if established:
                    self.disconnected_at = time.monotonic()
                self._set_state(ConnectionState.OFFLINE)
                self._forget_presence()
            failures = 0 if established else failures + 1

    # -- the session's callbacks ----------------------------------------------------

    def _session_open(self, session: Session) -> None:
        self._session = session
        self._hub.notify("connection")

    def _session_synced(self) -> None:
        self.last_error = None
        self._set_state(ConnectionState.CONNECTED)

    def _session_failed(self, message: str, code: int | None, permanent: bool) -> None:
        self.last_error = message
        self.last_close_code = code
        if permanent:
            self._permanent = True
            logger.warning("workshop=%s refused permanently: %s", self.workshop_id, message)
        self._hub.notify("connection")

    # -- the document ----------------------------------------------------------------

    def _on_doc_update(self, event: Any) -> None:
        self._data = None
        if self._remote:
            return
        if self._capture is not None:
            self._capture.append(event.update)
        else:
            # A direct edit of ``client.doc``: persisted with the next action.
            logger.warning("workshop=%s doc edited outside client.edit()", self.workshop_id)
            self._stray.append(event.update)

    def _apply_remote_sync(self, updates: list[bytes]) -> None:
        self._remote = True
        try:
            for update in updates:
                self.doc.apply_update(update)
        finally:
            self._remote = False
        self._data = None

    async def _apply_remote(self, update: bytes) -> None:
        self._apply_remote_sync([update])
        # Views see it at once; the local copy of server state is a cache (a lost
        # one is fetched again by the next sync), so waiting on its fsync would
        # only delay them.
        self._hub.notify("remote")
        await self._replica.add_remote(update, self.doc.get_update)

    async def edit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(doc, *args, **kwargs)`` as a local edit; returns its result.

        The updates it makes are committed to the local store before this returns
        (shielded from cancellation), then sent if connected. Every action method
        goes through here; use it for edits of your own on ``client.doc``.
        """
        if self.state is ConnectionState.CLOSED:
            raise ClientError("the client is closed")
        captured, self._stray = self._stray, []
        self._capture = captured
        try:
            result = fn(self.doc, *args, **kwargs)
        finally:
            self._capture = None
        if captured:
            with anyio.CancelScope(shield=True):
                for update in captured:
                    seq = await self._replica.add_local(update)
                    session = self._session
                    if session is not None:
                        session.send_local(seq, update)
            self._hub.notify("local")
            self._hub.notify("saved")
        return result

    # -- saved status ----------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        """Local edits the server has not yet confirmed as committed (0: all saved)."""
        return self._replica.pending_count

    @property
    def saved(self) -> bool:
        return self._replica.pending_count == 0

    async def wait_saved(self, timeout: float | None = None) -> None:
        """Return once the server has committed every local edit made so far."""
        await self.wait_for(lambda: self._replica.pending_count == 0, timeout=timeout)

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
        self._wake_presence.set()
        self._hub.notify("presence")

    def _forget_presence(self) -> None:
        self._presence_changed(self._awareness.clear)

    def _send_me(self) -> None:
        if self._session is not None:
            self._session.send_awareness(self._me.frame())

    def _announce_frame(self) -> bytes:
        """Our state for a new connection: online_at refreshed, next clock."""
        self._me.update(online_at=time.time())
        return self._me.frame()

    async def set_stage_presence(self, stage: str) -> None:
        """Tell others which stage this client is looking at (awareness ``stage``)."""
        if not is_stage(stage):
            raise ClientError(f"unknown stage {stage!r}")
        self._me.update(stage=stage)
        self._send_me()

    def set_typing(self, typing: bool = True) -> None:
        """Call on every keystroke; sent at most every 300 ms, cleared 3 s after the last."""
        if typing:
            self._typing_requested = time.monotonic()
            self._typing_dirty = True
        else:
            self._typing_requested = None
        self._wake_typing.set()

    def move_cursor(self, x: float, y: float, stage: str | None = None) -> None:
        """Move this client's pointer; sent at most 10 times per second, the last one always."""
        where = stage or self._me.state.stage or self.stage or ""
        self._cursor_target = Cursor(float(x), float(y), where)
        self._wake_cursor.set()

    def hide_cursor(self) -> None:
        self._cursor_target = None
        if self._me.state.cursor is not None:
            self._me.update(cursor=None)
            self._send_me()

    async def _run_typing(self) -> None:
        while True:
            now = time.monotonic()
            requested = self._typing_requested
            wait = math.inf
            if requested is not None and now - requested >= TYPING_STALE_SECONDS:
                self._typing_requested = requested = None
            if requested is None:
                if self._me.state.typing:
                    self._me.update(typing=False, typing_at=None)
                    self._send_me()
            elif self._typing_dirty or not self._me.state.typing:
                ready_at = self._typing_sent + TYPING_DEBOUNCE_SECONDS
                if now >= ready_at:
                    self._typing_dirty = False
                    self._typing_sent = now
                    self._me.update(typing=True, typing_at=time.time())
                    self._send_me()
                    wait = requested + TYPING_STALE_SECONDS - now
                else:
                    wait = ready_at - now
            else:
                wait = requested + TYPING_STALE_SECONDS - now
            self._wake_typing = anyio.Event()
            with anyio.move_on_after(max(0.0, wait)):
                await self._wake_typing.wait()

    async def _run_cursor(self) -> None:
        while True:
            target = self._cursor_target
            wait = math.inf
            if target is not None and target != self._me.state.cursor:
                now = time.monotonic()
                ready_at = self._cursor_sent + CURSOR_INTERVAL_SECONDS
                if now >= ready_at:
                    self._cursor_sent = now
                    self._me.update(cursor=target)
                    if self._session is not None:
                        self.cursor_sends.append(now)
                    self._send_me()
                    wait = CURSOR_INTERVAL_SECONDS
                else:
                    wait = ready_at - now
            self._wake_cursor = anyio.Event()
            with anyio.move_on_after(wait):
                await self._wake_cursor.wait()

    async def _run_presence_clock(self) -> None:
        """Notify when a peer's typing flag turns stale (it never says so itself)."""
        while True:
            now = time.time()
            expiries = [
                s.typing_at + TYPING_STALE_SECONDS
                for s in self._awareness.states.values()
                if s.typing_at is not None and is_typing(s, now)
            ]
            wait = min(expiries) - now if expiries else math.inf
            self._wake_presence = anyio.Event()
            with anyio.move_on_after(max(0.0, wait) + 0.001) as scope:
                await self._wake_presence.wait()
            if scope.cancelled_caught:
                self._hub.notify("presence")
