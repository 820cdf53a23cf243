"""Webhooks: signed JSON events to the embedding application, at least once, in order.

Events (docs/webhooks.md): ``participant.joined``, ``participant.removed``,
``stage.changed``, ``ballot.opened``, ``ballot.closed``, ``mission.changed`` and
``vision.changed`` (once the text has been quiet for ``webhook_quiet_seconds``), and
``workshop.exported``.

How, without touching the update path:

- Every room tells :meth:`Webhooks.notify` after a commit (the manager's
  ``on_commit``): that only marks its workshop as changed (a set and an event, no I/O,
  no await).
- A watcher task wakes on those marks, reads the workshop (the loaded room's
  document, or the store if it was unloaded), summarizes what events are about and
  compares it with the summary kept in the outbox's cursor. The events and the new
  summary are written in one transaction, only if the cursor is still the one read
  (webhook_outbox.py), so after a crash or a restart nothing is lost, and nothing is
  produced twice, even by several processes examining the same change: the loser
  looks again. At start (and, on a shared outbox, every ``sweep_seconds``) every
  workshop active since its cursor was written is examined again, which covers
  changes committed just before a stop or by a process that died.
- A sender task claims the heads of the lines that are due and posts them, one
  workshop line at a time per endpoint (a workshop's events never overtake each
  other), retrying with exponential backoff and jitter until the endpoint answers
  2xx; the row is then deleted. A claim keeps other processes' senders off the row;
  a dead sender's claims expire.

The outbox lives in the configured database: the SQLite file, or PostgreSQL, shared
by every process of a cluster (``open_outbox``).

Signatures follow the Standard Webhooks scheme: ``webhook-id``, ``webhook-timestamp``
and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the
configured secret; the receiver rejects old timestamps and repeated ids (replays).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ..config import Settings
from ..errors import ConfigError, StorageError
from ..history import doc_from_updates, stored_parts
from ..schema import read_workshop
from ..schema.records import WorkshopData
from ..storage import Store
from .auth import AccessRegistry
from .manager import RoomManager
from .webhook_outbox import Cursor, Pending, open_outbox

__all__ = ("Webhooks", "WebhookTaps", "sign", "summarize", "changes")

logger = logging.getLogger(__name__)

#: text fields reported only after they have been quiet for a while
_TEXTS = ("mission", "vision")
#: line heads a sender claims at a time
_BATCH = 16


def sign(secret: str, event_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    mac = hmac.new(secret.encode(), f"{event_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def summarize(data: WorkshopData, removed: set[str]) -> dict[str, Any]:
    """What the events are about, as plain JSON data."""
    return {
        "participants": {pid: {"name": p.name, "role": p.role} for pid, p in data.participants.items()},
        "removed": sorted(removed),
        "stage": data.meta.get("stage"),
        "ballots": {bid: {"question": b.question, "open": b.open} for bid, b in data.ballots.items()},
        "mission": data.mission,
        "vision": data.vision,
    }


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events between two summaries (texts aside: the watcher times those)."""
    events: list[tuple[str, dict[str, Any]]] = []
    before = old.get("participants", {})
    for pid, who in new["participants"].items():
        if pid not in before:
            events.append(("participant.joined", {"participant_id": pid, **who}))
    for pid in new["removed"]:
        if pid not in old.get("removed", []):
            events.append(("participant.removed", {"participant_id": pid}))
    if new["stage"] is not None and new["stage"] != old.get("stage"):
        events.append(("stage.changed", {"stage": new["stage"], "previous": old.get("stage")}))
    ballots = old.get("ballots", {})
    for bid, ballot in new["ballots"].items():
        was = ballots.get(bid, {}).get("open")
        if ballot["open"] and was is not True:
            events.append(("ballot.opened", {"ballot_id": bid, "question": ballot["question"]}))
        elif not ballot["open"] and was is True:
            events.append(("ballot.closed", {"ballot_id": bid, "question": ballot["question"]}))
    return events


class Webhooks:
    """The watcher and the sender (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.webhook_secret or len(settings.webhook_secret) < 16:
            raise ConfigError("webhook_urls needs webhook_secret (at least 16 characters) to sign the events")
        for url in settings.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"webhook_urls: {url!r} is not an http(s) URL")
        self.settings = settings
        self.secret = settings.webhook_secret
        self.outbox = open_outbox(settings)
        #: a post may take up to three timeouts (connect, send, read): a claim with less
        #: left than this is given back rather than risk a second sender posting the row
        self._post_budget = 3 * settings.webhook_timeout
        self._dirty: set[str] = set()
        self._changed = anyio.Event()
        self._wake_sender = anyio.Event()
        #: text field -> (text, first seen at), per workshop: the quiet-period clock
        self._seen: dict[str, dict[str, tuple[str, float]]] = {}
        self._rechecks: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> Webhooks | None:
        return cls(settings) if settings.webhook_urls else None

    def notify(self, workshop_id: str) -> None:
        """Mark a workshop changed; the watcher looks at it soon. Never blocks."""
        self._dirty.add(workshop_id)
        self._changed.set()

    async def exported(self, workshop_id: str, fmt: str) -> None:
        """Queue ``workshop.exported`` (called when an export was served)."""
        await self._record(workshop_id, None, [("workshop.exported", {"format": fmt})])

    @asynccontextmanager
    async def running(self, manager: RoomManager, registry: AccessRegistry, store: Store) -> AsyncIterator[None]:
        """Run the watcher and the sender while the server runs."""
        async with self.outbox, anyio.create_task_group() as tg:
            tg.start_soon(self._sweep, store)
            tg.start_soon(self._watch, tg, manager, registry, store)
            tg.start_soon(self._send)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    # -- the watcher ------------------------------------------------------------------

    async def _sweep(self, store: Store) -> None:
        """Catch up at start and, on an outbox other processes share, now and then."""
        while True:
            try:
                await self._catch_up(store)
            except (StorageError, OSError) as exc:
                logger.warning("webhook catch-up failed (%s); trying again", exc)
                await anyio.sleep(5.0)
                continue
            if self.outbox.sweep_seconds is None:
                return
            await anyio.sleep(self.outbox.sweep_seconds)

    async def _catch_up(self, store: Store) -> None:
        """Examine every workshop that may have changed since its cursor was written."""
        written = await self.outbox.cursors()
        for info in await store.list_workshops():
            at = written.get(info.workshop_id)
            if at is None or (info.last_activity or 0) >= at - 1:  # a second of slack for clock steps
                self.notify(info.workshop_id)

    async def _watch(self, tg: TaskGroup, manager: RoomManager, registry: AccessRegistry, store: Store) -> None:
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            await anyio.sleep(0.1)  # let a burst of appends settle into one look
            dirty, self._dirty = self._dirty, set()
            for workshop_id in sorted(dirty):
                try:
                    await self._examine(tg, workshop_id, manager, registry, store)
                except Exception:  # one workshop's failure must not stop the others' events
                    logger.exception("workshop=%s webhook events could not be computed", workshop_id)
                    self._dirty.add(workshop_id)

    async def _examine(
        self, tg: TaskGroup, workshop_id: str, manager: RoomManager, registry: AccessRegistry, store: Store
    ) -> None:
        cursor = await self.outbox.cursor(workshop_id)
        room = manager.rooms.get(workshop_id)
        # a room still loading has an empty document, and a replica (another process
        # owns the workshop) may be behind what another examiner reported: read the store
        if (
            room is not None
            and room.ready.is_set()
            and room.load_error is None
            and room.last_seq >= (cursor.seq if cursor else 0)
        ):
            data, seq = read_workshop(room.doc), room.last_seq
        else:
            stored = await store.load(workshop_id)
            data, seq = read_workshop(doc_from_updates(stored_parts(stored))), stored.last_seq
        if cursor is not None and seq < cursor.seq:
            return  # already reported further than this look sees
        removed = set(await registry.load_revoked(workshop_id))
        old = cursor.summary if cursor else {}
        new = summarize(data, removed)
        events = changes(old, new)
        now = time.monotonic()
        seen = self._seen.setdefault(workshop_id, {})
        for field in _TEXTS:  # report a text once it has been quiet long enough
            emitted = old.get(field, "")
            current = new[field]
            new[field] = emitted
            if current == emitted:
                seen.pop(field, None)
                continue
            first = seen.get(field)
            if first is None or first[0] != current:
                seen[field] = (current, now)
                self._recheck_later(tg, workshop_id, self.settings.webhook_quiet_seconds)
            elif now - first[1] >= self.settings.webhook_quiet_seconds:
                events.append((f"{field}.changed", {"text": current}))
                new[field] = current
                seen.pop(field, None)
            else:
                self._recheck_later(tg, workshop_id, self.settings.webhook_quiet_seconds - (now - first[1]))
        stale = (
            cursor is not None
            and self.outbox.sweep_seconds is not None
            and seq > cursor.seq
            and (time.time() - cursor.written_at > self.outbox.sweep_seconds / 2)
        )  # renewed now and then, so the sweep passes over workshops busy without events
        if events or new != old or cursor is None or stale:
            moved = Cursor(seq, new, version=cursor.version if cursor else 0)
            if not await self._record(workshop_id, moved, events):
                # another examiner (another process) reported this change first: look
                # again from its cursor, which usually finds nothing left to report
                logger.debug("workshop=%s webhook cursor moved meanwhile; looking again", workshop_id)
                self.notify(workshop_id)

    def _recheck_later(self, tg: TaskGroup, workshop_id: str, delay: float) -> None:
        """Look at the workshop again once a pending text may have become quiet (one timer each)."""
        if workshop_id in self._rechecks:
            return
        self._rechecks.add(workshop_id)

        async def recheck() -> None:
            await anyio.sleep(max(0.0, delay) + 0.01)
            self._rechecks.discard(workshop_id)
            self.notify(workshop_id)

        tg.start_soon(recheck)

    async def _record(self, workshop_id: str, cursor: Cursor | None, events: list[tuple[str, dict[str, Any]]]) -> bool:
        now = time.time()
        bodies = []
        for kind, data in events:
            event_id = "evt_" + uuid.uuid4().hex
            body = {"id": event_id, "type": kind, "workshop_id": workshop_id, "created_at": now, "data": data}
            bodies.append((event_id, json.dumps(body, separators=(",", ":"), ensure_ascii=False)))
        if not await self.outbox.record(workshop_id, cursor, bodies, self.settings.webhook_urls):
            return False
        if bodies:
            logger.info("workshop=%s webhook events queued: %s", workshop_id, ", ".join(k for k, _ in events))
            self._wake_sender.set()
        return True

    # -- the sender -------------------------------------------------------------------

    def _post(self, url: str, event_id: str, body: str) -> int:
        stamp = int(time.time())
        request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
            "content-type": "application/json", "user-agent": "vmv-sync-webhooks", "webhook-id": event_id,
            "webhook-timestamp": str(stamp), "webhook-signature": sign(self.secret, event_id, stamp, body),
        })  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.settings.webhook_timeout) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def _backoff(self, attempts: int) -> float:
        return min(self.settings.webhook_max_backoff, 2.0 ** min(attempts, 30)) * random.uniform(0.5, 1.0)

    async def _send(self) -> None:
        while True:
            self._wake_sender = anyio.Event()
            try:
                more = await self._send_due()
                due = await self.outbox.next_attempt()
            except StorageError as exc:  # the database is away (a restart): the rows wait
                logger.warning("webhook outbox unavailable (%s); trying again", exc)
                more, due = False, time.time() + 1.0
            if more:
                continue
            wait = (
                self.outbox.poll_seconds if due is None else max(0.05, min(self.outbox.poll_seconds, due - time.time()))
            )
            with anyio.move_on_after(wait):
                await self._wake_sender.wait()

    async def _send_due(self) -> bool:
        """Claim the due line heads and post them; True if more may be due at once."""
        claimed = await self.outbox.heads(time.time(), _BATCH)
        for index, pending in enumerate(claimed):
            if pending.claimed_until - time.time() < self._post_budget:
                await self.outbox.release([p.id for p in claimed[index:]])  # posts were slow: claim afresh
                return True
            await self._deliver(pending)
        return len(claimed) == _BATCH

    async def _deliver(self, pending: Pending) -> None:
        try:
            status = await anyio.to_thread.run_sync(self._post, pending.endpoint, pending.event_id, pending.body)
            error = "" if 200 <= status < 300 else f"status {status}"
        except (OSError, ValueError) as exc:
            error = str(exc)
        if not error:
            await self.outbox.delivered(pending.id)
            return
        delay = self._backoff(pending.attempts)
        await self.outbox.retry_at(pending.id, time.time() + delay)
        logger.warning(
            "workshop=%s webhook %s to %s failed (%s, attempt %d); next try in %.1f s",
            pending.workshop_id, pending.event_id, pending.endpoint, error, pending.attempts + 1, delay,
        )  # fmt: skip


class WebhookTaps:
    """ASGI middleware: what the HTTP API does that the document does not show.

    A removal (``POST .../participants/{id}/revoke``) changes the access registry, not
    the document: the watcher is told to look. A served export queues
    ``workshop.exported``. Only answers with status 200 count.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        hooks: Webhooks | None = getattr(scope.get("app").state, "webhooks", None) if scope.get("app") else None
        if scope["type"] != "http" or hooks is None:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        status = 0

        async def noting_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, noting_send)
        if status != 200:
            return
        parts = path.strip("/").split("/")
        if scope["method"] == "POST" and len(parts) == 6 and parts[:2] == ["api", "workshops"] and parts[5] == "revoke":
            hooks.notify(parts[2])
        elif (
            scope["method"] == "GET"
            and len(parts) == 3
            and parts[0] == "workshops"
            and parts[2] in ("export", "report")
        ):
            query = scope.get("query_string", b"").decode("latin-1")
            fmt = "html" if parts[2] == "report" else ("md" if "format=md" in query else "json")
            await hooks.exported(parts[1], fmt)
