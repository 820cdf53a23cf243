"""The live document of a :class:`~vmv_sync.client.WorkshopClient` and what is written to it.

:class:`LiveDocument` owns the pycrdt document, its observers (edit capture,
derived state, the chat log) and the rules of writing to it; the client composes
it with the local replica (client/replica.py), the session of the moment and the
change hub, and reaches it only through the public methods here. Rules kept here:

* an edit is committed to the local replica (shielded from cancellation) before
  the action returns, then sent if a session is open;
* an action whose container has not arrived is held (client/intents.py) and
  applied, in order per container, after the first sync and after every remote
  update that may have brought it;
* after a refused client id or edit, the document is rebuilt under a fresh client
  id and the pending edits re-made (client/recovery.py). :attr:`LiveDocument.doc`
  always names the live document: read it each time, do not keep it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from pycrdt import Doc, get_state, merge_updates

from ..derived import DerivedState, DerivedTracker
from ..errors import ClientError
from ..protocol import decode_state_vector
from ..schema import ChatMessage, InvalidAction, Roots, WorkshopData, bind_roots, read_workshop
from .capture import EditCapture
from .events import ChangeHub
from .intents import Intent, apply_intent, container_of, missing, validate_on_scratch
from .messages import MessageLog
from .presence import LocalAwareness
from .recovery import (
    MAX_FRUITLESS,
    Recovery,
    Refusal,
    Refused,
    integrated_prefix,
    is_client_id_refusal,
    pinned_row,
)
from .replica import LocalReplica, Row
from .session import Session

__all__ = ("LiveDocument",)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LiveDocument:
    """The document side of a client (see the module docstring).

    Args:
        doc: the document to start with (a recovery replaces it: read :attr:`doc`).
        replica: the local log its edits are committed to (entered by the caller).
        me: this client's awareness state (re-keyed when the document is rebuilt).
        hub: where changes are announced.
        session: returns the open session, if any (edits are sent through it).
        workshop_id, participant_id: for log lines and this participant's selection.
    """

    def __init__(
        self,
        doc: Doc[Any],
        replica: LocalReplica,
        me: LocalAwareness,
        hub: ChangeHub,
        session: Callable[[], Session | None],
        *,
        workshop_id: str,
        participant_id: str,
    ) -> None:
        #: the live document (replaced by a recovery: read it each time)
        self.doc = doc
        self.workshop_id = workshop_id
        self.participant_id = participant_id
        #: what every recovery from a refusal did, one sentence each (oldest first)
        self.recoveries: deque[str] = deque(maxlen=100)
        #: local edits that will never reach the server (``client.refused``)
        self.refused: list[Refused] = []
        self._replica = replica
        self._me = me
        self._hub = hub
        self._session = session
        self._data: WorkshopData | None = None
        self._capture: EditCapture | None = None
        self._tracker: DerivedTracker | None = None
        self._messages: MessageLog | None = None
        self._roots: Roots | None = None
        self._closed = False
        #: set by a 4403 that starts a recovery; consumed by :meth:`rebuild`
        self._refusal: Refusal | None = None
        #: a rebuilt replica waiting for its next sync
        self._recovery: Recovery | None = None
        self._fruitless = 0
        self._held_lock = anyio.Lock()

    # -- binding the document ----------------------------------------------------------

    def open(self, parts: list[bytes]) -> None:
        """Apply what the local replica holds and start observing the document."""
        self._bind(self.doc, parts)

    def close(self) -> None:
        """Refuse further edits (they raise ClientError) and stop observing. Idempotent."""
        self._closed = True
        self._unbind()

    def _doc_changed(self) -> None:
        self._data = None

    def _bind(self, doc: Doc[Any], parts: list[bytes]) -> None:
        self.doc = doc
        self._capture = EditCapture(doc, self._doc_changed, self.workshop_id)
        self._capture.apply_remote(parts)
        # Kept referenced: pycrdt drops a subscription with the wrapper it was made on.
        self._roots = bind_roots(doc)
        self._tracker = DerivedTracker(doc)
        self._messages = MessageLog(self._roots.messages)
        self._data = None

    def _unbind(self) -> None:
        # The tracker and the chat log stop following but stay readable: the views
        # of a closed client show its last state.
        if self._capture is None:
            return
        self._capture.close()
        self._capture = None
        if self._tracker is not None:
            self._tracker.close()
        if self._messages is not None:
            self._messages.close()

    # -- reading -----------------------------------------------------------------------

    @property
    def data(self) -> WorkshopData:
        """The whole workshop as plain data, cached until the next update."""
        if self._data is None:
            self._data = read_workshop(self.doc)
        return self._data

    @property
    def derived(self) -> DerivedState:
        if self._tracker is None:
            raise ClientError("the client is closed (or not entered)")
        return self._tracker.state

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        if self._messages is None:
            raise ClientError("the client is closed (or not entered)")
        return self._messages.messages

    def my_selection(self) -> dict[str, float]:
        """This participant's selected values, as the local replica shows them."""
        return self.data.selections.get(self.participant_id, {})

    @property
    def recovering(self) -> bool:
        """A rebuilt replica waits for its next sync (its session is a recovery)."""
        return self._recovery is not None

    def forgive(self) -> None:
        """Start counting fruitless recoveries afresh (``reconnect()``: a new try)."""
        self._fruitless = 0

    # -- local edits -------------------------------------------------------------------

    def _check_open(self) -> EditCapture:
        if self._closed or self._capture is None:
            raise ClientError("the client is closed (or not entered)")
        return self._capture

    async def _commit(self, updates: list[bytes], intent: Intent | None, intent_id: str | None) -> None:
        update = updates[0] if len(updates) == 1 else merge_updates(*updates)
        with anyio.CancelScope(shield=True):
            seq = await self._replica.add_local(update, intent, intent_id)
            session = self._session()
            if session is not None:
                session.send_local(seq, update)
        self._hub.notify("local")
        self._hub.notify("saved")

    async def edit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(doc, *args, **kwargs)`` as a local edit; returns its result.

        The updates it makes are committed to the local store before this returns
        (shielded from cancellation), then sent if connected. Use it for edits of your
        own on ``client.doc``; unlike the action methods such an edit has no intent, so
        it is never held and cannot be re-made after a refusal (docs/client.md).
        """
        capture = self._check_open()
        with capture.capture() as captured:
            result = fn(self.doc, *args, **kwargs)
        if captured:
            await self._commit(captured, None, None)
        return result

    async def act(self, intent: Intent) -> None:
        """Apply a typed action now, or hold it until its container arrives."""
        capture = self._check_open()
        try:
            intent.encode()
        except (TypeError, ValueError) as exc:
            raise InvalidAction(f"{intent.name}: arguments must be plain data ({exc})") from exc
        where = missing(self.doc, intent)
        place = container_of(intent)
        queued = place is not None and any(
            r.intent is not None and container_of(r.intent) == place for r in self._held_rows()
        )
        if self._recovery is None and where is None and not queued:
            await self._apply(capture, intent, None)
            return
        validate_on_scratch(self.doc, intent, where)
        with anyio.CancelScope(shield=True):
            await self._replica.hold(intent)
        logger.info("workshop=%s held %s until %s", self.workshop_id, intent.describe(), where or "the next sync")
        self._hub.notify("saved")

    def _held_rows(self) -> list[Row]:
        return [r for r in self._replica.held() if r.intent is not None]

    async def _apply(self, capture: EditCapture, intent: Intent, intent_id: str | None) -> None:
        with capture.capture() as captured:
            apply_intent(self.doc, intent)
        if captured:
            await self._commit(captured, intent, intent_id)
        elif intent_id is not None:
            # Nothing to write (say, selecting a value already selected): settled.
            await self._settle_held(intent_id)

    async def _settle_held(self, intent_id: str) -> None:
        for row in self._replica.held():
            if row.intent_id == intent_id:
                await self._replica.remake([row.seq], [])
        self._hub.notify("saved")

    async def apply_held(self) -> None:
        """Apply every held intent whose container is there, in order per container.

        Run at start too: held intents whose container arrived in an earlier run apply.
        """
        if self._recovery is not None or self._capture is None or not self._replica.held():
            return
        async with self._held_lock:
            blocked: set[Any] = set()
            for row in self._held_rows():
                assert row.intent is not None
                place = container_of(row.intent)
                if place in blocked or self._capture is None:
                    continue
                if missing(self.doc, row.intent) is not None:
                    blocked.add(place)
                    continue
                try:
                    await self._apply(self._capture, row.intent, row.intent_id)
                except InvalidAction as exc:
                    logger.warning(
                        "workshop=%s held %s is no longer valid: %s", self.workshop_id, row.intent.describe(), exc
                    )
                    self.refused.append(Refused(row.intent.describe(), f"no longer valid when applied: {exc}"))
                    with anyio.CancelScope(shield=True):
                        await self._replica.remake([row.seq], [])
                    self._hub.notify("saved")

    # -- remote updates and acknowledgements (the session's, through the client) --------

    async def apply_remote(self, update: bytes) -> None:
        """Apply, show and persist an update from the server; then held intents it may free."""
        capture = self._capture
        if capture is None:
            return
        capture.apply_remote([update])
        # Views see it at once; the local copy of server state is a cache (a lost
        # one is fetched again by the next sync), so waiting on its fsync would
        # only delay them.
        self._hub.notify("remote")
        await self._replica.add_remote(update)
        session = self._session()
        if session is not None and session.synced:
            await self.apply_held()

    async def synced(self) -> None:
        """The server's step 2 was applied: finish a recovery, apply held intents."""
        if self._recovery is not None:
            with anyio.CancelScope(shield=True):
                await self._finish_recovery()
        await self.apply_held()

    async def confirm(self, seqs: list[int]) -> None:
        """The server committed the pending rows ``seqs``: settle them durably."""
        if self._replica.confirm(seqs):
            self._fruitless = 0
            self._hub.notify("saved")
            # Shielded: closing right after wait_saved() must not leave confirmed
            # edits counted pending in the store.
            with anyio.CancelScope(shield=True):
                await self._replica.persist_confirmed()

    # -- recovery from a refusal (client/recovery.py) -----------------------------------

    def start_recovery(self, session: Session, reason: str) -> bool:
        """Called on a 4403 or 4413 with ``reason``: whether it starts a recovery (else it is permanent).

        The recovery itself runs in :meth:`rebuild`, once the refused session ended.
        """
        taken = is_client_id_refusal(reason)
        frames = tuple(tuple(f) for f in session.frames)
        if not (taken or any(frames)):
            return False  # not about our edits (say, not allowed in this workshop)
        if self._fruitless >= MAX_FRUITLESS:
            note = f"gave up after {self._fruitless} recoveries that changed nothing: {reason}"
            self.recoveries.append(note)
            logger.warning("workshop=%s %s", self.workshop_id, note)
            return False
        self._fruitless += 1
        self._refusal = Refusal(reason, taken, frames, session.recovery, self.doc.client_id)
        return True

    async def rebuild(self) -> str | None:
        """After a refusal: a fresh document from the replica log only, under a new client id.

        Returns what was done, as a sentence (None when no refusal was waiting).
        """
        refusal, self._refusal = self._refusal, None
        if refusal is None or self._closed:
            return None
        parts = await self._replica.load_replica()
        if self._closed:
            return None
        suspects = self._replica.pending_rows()
        self._unbind()
        self._bind(Doc(), parts)
        self._me.rekey(self.doc.client_id)
        self._replica.set_suspect(r.seq for r in suspects)
        self._recovery = Recovery(refusal, suspects)
        what = f"client id {refusal.old_client_id}" if refusal.client_id_taken else "an edit"
        note = (
            f"the server refused {what} ({refusal.reason}); rebuilt the replica under client id "
            f"{self.doc.client_id} with {len(suspects)} pending edit(s) set aside until the next sync"
        )
        self.recoveries.append(note)
        logger.warning("workshop=%s %s", self.workshop_id, note)
        self._hub.notify("recovered")
        self._hub.notify("remote")
        return note

    async def _finish_recovery(self) -> None:
        recovery, self._recovery = self._recovery, None
        self._replica.set_suspect(())
        if recovery is None:
            return
        refusal = recovery.refusal
        rows = [r for r in recovery.suspects if self._replica.is_pending(r.seq)]
        if refusal.client_id_taken:
            # Nothing of ours under the refused id was integrated: whatever the server
            # holds there is someone else's, however well its clocks match ours.
            cut = next((i for i, r in enumerate(rows) if _writes_under(r, refusal.old_client_id)), len(rows))
            kept = rows[: integrated_prefix(self.doc, rows[:cut])]
        else:
            kept = rows[: integrated_prefix(self.doc, rows)]
        lacking = rows[len(kept) :]
        pinned = pinned_row(refusal, lacking)
        remade = [r for r in lacking if r is not pinned]
        self._replica.confirm(r.seq for r in kept)
        await self._replica.remake([r.seq for r in lacking], [(r.intent, r.seq) for r in remade if r.intent])
        if pinned is not None:
            action = pinned.intent.describe() if pinned.intent else "edit()"
            self.refused.append(Refused(action, refusal.reason))
        for row in remade:
            if row.intent is None:
                self.refused.append(Refused("edit()", "an edit without intent cannot be re-made under a new client id"))
        if kept or pinned is not None:
            self._fruitless = 0
        await self._replica.persist_confirmed()
        note = (
            f"recovered: {len(kept)} edit(s) were already on the server, {len(remade)} re-made"
            + (f", refused: {self.refused[-1].action}" if pinned is not None else "")
        )
        self.recoveries.append(note)
        logger.warning("workshop=%s %s", self.workshop_id, note)
        self._hub.notify("recovered")
        self._hub.notify("saved")


def _writes_under(row: Row, client_id: int) -> bool:
    """Whether ``row``'s update holds structs written under ``client_id``."""
    if not row.update:
        return False
    return client_id in decode_state_vector(get_state(row.update))
