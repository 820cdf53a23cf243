"""The client's link to the server: one channel and one session per attempt, for ever.

A :class:`Link` is the connection half of a :class:`~vmv_sync.client.WorkshopClient`,
composed beside its :class:`~vmv_sync.client.document.LiveDocument`. Its
:class:`~vmv_sync.client.connector.Connector` calls :meth:`Link._attempt` in a loop
(backoff and full jitter between attempts); each attempt opens a channel from the
factory, runs one :class:`~vmv_sync.client.session.Session` over it until the channel
ends, and reports how. The link is the session's
:class:`~vmv_sync.client.session.SessionHost`: what concerns the document goes to
the document, what concerns the connection (state, errors, presence) stays here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import anyio
import anyio.abc

from ..errors import TOKEN_REFRESH_PREFIX
from ..protocol import AwarenessEntry
from .backoff import Backoff
from .channel import ChannelFactory, ChannelRefused
from .connector import Connector
from .document import LiveDocument
from .events import ChangeHub, ConnectionState
from .presence import AwarenessTable, LocalAwareness, presence_events
from .replica import LocalReplica
from .session import Failure, Session

__all__ = ("Link",)

logger = logging.getLogger(__name__)


class Link:
    """Keeps a session open when wanted; the connection state and how it last ended.

    Args:
        document: the live document (sessions read it; remote updates go to it).
        replica: the local log (sessions read the pending edits from it).
        me: this client's awareness state.
        peers: everyone's awareness states, as the server relayed them.
        hub: where connection and presence changes are announced.
        channels: opens one channel per attempt.
        presence_changed: called after the peers' states changed (throttles re-arm).
        backoff, rng, online: the connector's (see :class:`Connector`).
        heartbeat: seconds between awareness renewals; ``label``: for log lines.
    """

    def __init__(
        self,
        document: LiveDocument,
        replica: LocalReplica,
        me: LocalAwareness,
        peers: AwarenessTable,
        hub: ChangeHub,
        channels: ChannelFactory,
        *,
        presence_changed: Callable[[], None],
        backoff: Backoff,
        rng: random.Random,
        online: bool = True,
        heartbeat: float = 15.0,
        label: str = "",
    ) -> None:
        self._document = document
        self._replica = replica
        self._me = me
        self._peers = peers
        self._hub = hub
        self._channels = channels
        self._presence_changed = presence_changed
        self._heartbeat = heartbeat
        self._label = label
        self._tg: anyio.abc.TaskGroup | None = None
        self.connector = Connector(backoff, rng, self._attempt, online=online)
        #: the open session, if any (local edits and awareness go out through it)
        self.session: Session | None = None
        self.state = ConnectionState.OFFLINE
        #: the last connection failure, as a sentence; cleared on a successful sync
        self.last_error: str | None = None
        #: the close code of the last connection, if the server sent one
        self.last_close_code: int | None = None
        #: monotonic time the last established connection was lost
        self.disconnected_at: float | None = None

    async def run(self) -> None:
        """Connect and reconnect until cancelled; owns the tasks it starts."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self.connector.run()

    def set_state(self, state: ConnectionState) -> None:
        if self.state is not state:
            logger.debug("workshop=%s %s", self._label, state.value)
            self.state = state
            self._hub.notify("connection")

    # -- what the client asks -----------------------------------------------------------

    def send_awareness(self) -> None:
        """Send this client's awareness state now, if connected."""
        if self.session is not None:
            self.session.send_awareness(self._me.frame())

    def reconnect(self) -> None:
        """Skip a running backoff, or drop a live session and open a new one."""
        if self.session is not None and self._tg is not None:
            self._tg.start_soon(self.session.abort_quietly)
        self.connector.wake(resume=True)

    async def disconnect(self) -> None:
        """Say goodbye, close, and stay offline until :meth:`reconnect`."""
        self.connector.want_online = False
        session = self.session
        if session is not None:
            with anyio.move_on_after(3):
                await session.close_cleanly(self._me.removal_frame())
        self.connector.stop()
        with anyio.fail_after(5):
            while self.session is not None:
                await self._hub.wait_any()

    async def close(self) -> None:
        """Leave for good: the awareness goodbye and a clean close (at most 3 s), then CLOSED."""
        self.connector.want_online = False
        session = self.session
        if session is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(3):
                await session.close_cleanly(self._me.removal_frame())
        self.set_state(ConnectionState.CLOSED)

    # -- one attempt --------------------------------------------------------------------

    async def _attempt(self) -> bool:
        """One connection, start to end (the connector's ``attempt``): True if it synced."""
        self.set_state(ConnectionState.CONNECTING)
        established = False
        try:
            async with self._channels() as channel:
                session = Session(
                    self._document.doc, self._replica, self._me, channel, self, heartbeat=self._heartbeat,
                    recovery=self._document.recovering, label=self._label,
                )  # fmt: skip
                try:
                    async with session:
                        self.session = session
                        self._hub.notify("connection")
                        await session.ended.wait()
                finally:
                    self.session = None
                    established = session.synced
        except ChannelRefused as exc:
            self.on_failed(None, Failure(exc.message, permanent=exc.permanent))
        finally:
            self.session = None
            if established:
                self.disconnected_at = time.monotonic()
            self.set_state(ConnectionState.OFFLINE)
            self._peers_changed(self._peers.clear)
        with anyio.CancelScope(shield=True):
            note = await self._document.rebuild()
        if note is not None:  # a refusal was recovered from: retry at once
            self.last_error = note
            self.connector.skip_backoff = True
        return established

    def _peers_changed(self, apply: Callable[[], bool]) -> None:
        before = self._peers.online()
        if not apply():
            return
        for event in presence_events(before, self._peers.online()):
            self._hub.publish(event)
        self._presence_changed()
        self._hub.notify("presence")

    # -- the session's host --------------------------------------------------------------

    async def on_remote_update(self, update: bytes) -> None:
        await self._document.apply_remote(update)

    async def on_synced(self, session: Session) -> None:
        self.last_error = None
        self.set_state(ConnectionState.CONNECTED)
        await self._document.synced()

    def on_awareness(self, entries: list[AwarenessEntry]) -> None:
        self._peers_changed(lambda: self._peers.apply(entries))

    async def on_saved(self, seqs: list[int]) -> None:
        await self._document.confirm(seqs)

    def on_failed(self, session: Session | None, failure: Failure) -> None:
        self.last_error = failure.message
        self.last_close_code = failure.code
        if failure.reason.startswith(TOKEN_REFRESH_PREFIX):
            # a refused in-band refresh (4401/4403): not about our edits, and the token
            # we connected with still holds; reconnect with it (the caller was told)
            logger.warning("workshop=%s %s", self._label, failure.message)
        # 4413 too: an update the server found too large or too costly (or past a quota
        # share) is refused like a forbidden one, and re-sending it as it is would be
        # refused again on every reconnect: the recovery pins it and drops it
        elif failure.code in (4403, 4413) and session is not None and self._document.start_recovery(
            session, failure.reason
        ):
            pass  # the document is rebuilt once this session ended (_attempt)
        elif failure.permanent:
            self.connector.permanent = True
            logger.warning("workshop=%s refused permanently: %s", self._label, failure.message)
        self._hub.notify("connection")
