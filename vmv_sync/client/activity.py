"""Throttled presence signals: the typing flag and the cursor, and stale-typing wake-ups.

Keystrokes and pointer moves arrive far faster than peers need them. The typing
flag goes out on the leading edge and then at most every 300 ms while typing goes
on, and clears itself 3 s after the last keystroke; the cursor goes out at most 10
times per second, always with the latest position last (trailing edge) so the
final move is never stuck. A peer's typing flag turns stale by itself, so a timer
wakes change subscribers when that happens.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import anyio

from ..presence import CURSOR_INTERVAL_SECONDS, TYPING_DEBOUNCE_SECONDS, TYPING_STALE_SECONDS, Cursor, is_typing
from .presence import AwarenessTable, LocalAwareness

__all__ = ("Activity",)


class Activity:
    """The typing and cursor throttles of one client, and the presence clock.

    Args:
        me: this client's awareness state (updated in place).
        send: sends ``me`` now if connected.
        connected: whether a connection is open (only then a cursor send is recorded).
        table: everyone's awareness states (for stale typing flags).
        stale: called when a peer's typing flag went stale.
    """

    def __init__(
        self,
        me: LocalAwareness,
        send: Callable[[], None],
        connected: Callable[[], bool],
        table: AwarenessTable,
        stale: Callable[[], None],
    ) -> None:
        self._me = me
        self._send = send
        self._connected = connected
        self._table = table
        self._stale = stale
        self._wake_typing = anyio.Event()
        self._wake_cursor = anyio.Event()
        self._wake_presence = anyio.Event()
        self._typing_requested: float | None = None
        self._typing_sent = -math.inf
        self._typing_dirty = False
        self._cursor_target: Cursor | None = None
        self._cursor_sent = -math.inf
        #: monotonic times at which a cursor update was sent (throttle evidence)
        self.cursor_sends: deque[float] = deque(maxlen=1000)

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        tg.start_soon(self._run_typing)
        tg.start_soon(self._run_cursor)
        tg.start_soon(self._run_presence_clock)

    def presence_changed(self) -> None:
        """Awareness states changed: re-arm the stale-typing timer."""
        self._wake_presence.set()

    def set_typing(self, typing: bool = True) -> None:
        if typing:
            self._typing_requested = time.monotonic()
            self._typing_dirty = True
        else:
            self._typing_requested = None
        self._wake_typing.set()

    def move_cursor(self, cursor: Cursor) -> None:
        self._cursor_target = cursor
        self._wake_cursor.set()

    def hide_cursor(self) -> None:
        self._cursor_target = None
        if self._me.state.cursor is not None:
            self._me.update(cursor=None)
            self._send()

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
                    self._send()
            elif self._typing_dirty or not self._me.state.typing:
                ready_at = self._typing_sent + TYPING_DEBOUNCE_SECONDS
                if now >= ready_at:
                    self._typing_dirty = False
                    self._typing_sent = now
                    self._me.update(typing=True, typing_at=time.time())
                    self._send()
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
                    if self._connected():
                        self.cursor_sends.append(now)
                    self._send()
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
                for s in self._table.states.values()
                if s.typing_at is not None and is_typing(s, now)
            ]
            wait = min(expiries) - now if expiries else math.inf
            self._wake_presence = anyio.Event()
            with anyio.move_on_after(max(0.0, wait) + 0.001) as scope:
                await self._wake_presence.wait()
            if scope.cancelled_caught:
                self._stale()
