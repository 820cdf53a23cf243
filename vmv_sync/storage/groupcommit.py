"""Group commit: one writer commits every pending append in one backend transaction.

Callers queue their append and wait; one writer task takes *everything* pending,
hands it to the backend's ``commit_batch`` once (one transaction, one fsync), then
wakes every caller with the seq of its last update. Callers arriving during a commit
go into the next batch, so batches grow exactly when the store is busy; no timer ever
delays a commit. Nothing here knows SQL: a backend gives an async ``commit_batch``
(SQLite runs its transaction on a worker thread, a PostgreSQL store would await its
driver) and the exception types that mean "this batch failed, carry on".

Example:
    >>> group = GroupCommit(commit_batch, name="vmv.sqlite3")  # doctest: +SKIP
    >>> await task_group.start(group.run)
    >>> seq = await group.append("w1", [update], None)
    >>> await group.aclose()   # commits what is queued, then the writer returns
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc

from ..errors import StorageError

__all__ = ("GroupCommit", "PendingAppend", "CommitBatch")

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class PendingAppend:
    """One queued ``append`` call, woken by the writer after COMMIT (or failure).

    ``updates`` and ``claims`` are validated before queueing (see :mod:`.rules`), so
    a bad call fails alone instead of failing its whole batch.
    """

    workshop_id: str
    updates: list[bytes]
    #: client id -> owner; ``None`` (the usual case) when the call claims nothing
    claims: dict[int, str] | None = None
    #: the writer's fencing epoch (``None``: unfenced); a newer recorded epoch refuses it
    epoch: int | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    seq: int = 0
    error: str | None = None
    cause: BaseException | None = None
    #: this request alone was refused (a claim conflict, a stale epoch): raised as is
    refusal: StorageError | None = None

    def fail(self, message: str, cause: BaseException | None) -> None:
        self.error, self.cause = message, cause
        self.done.set()


#: Commits a whole batch in ONE transaction; returns each request's last seq, in order,
#: or the :class:`StorageError` that refused that request alone (nothing of it stored).
CommitBatch = Callable[[list[PendingAppend]], Awaitable[Sequence[int | StorageError]]]


class GroupCommit:
    """The batching writer shared by the durable stores.

    Args:
        commit_batch: the backend's transaction for a batch (see :data:`CommitBatch`).
            It must roll back entirely when it raises.
        name: what log lines and errors name (the database).
        failures: exceptions of ``commit_batch`` that fail only the batch: every
            caller in it gets a :class:`StorageError` and the writer carries on. Any
            other exception also fails the batch's callers, then ends the writer
            (an internal error must not be retried silently).
    """

    def __init__(
        self,
        commit_batch: CommitBatch,
        *,
        name: str,
        failures: tuple[type[BaseException], ...] = (StorageError,),
    ) -> None:
        self._commit_batch = commit_batch
        self._name = name
        self._failures = failures
        self._pending: list[PendingAppend] = []
        self._wakeup = anyio.Event()
        self._accepting = True
        self._started = False
        self._done = anyio.Event()
        #: committed batches (metrics; fewer than ``appends`` when grouped)
        self.commits = 0
        #: ``append`` calls committed
        self.appends = 0
        #: the largest number of ``append`` calls committed in one batch
        self.max_batch = 0

    @property
    def accepting(self) -> bool:
        """False once :meth:`aclose` started or the writer stopped."""
        return self._accepting

    async def append(
        self, workshop_id: str, updates: list[bytes], claims: dict[int, str] | None, epoch: int | None = None
    ) -> int:
        """Queue one append and wait for its batch; the seq of its last update.

        If the caller is cancelled while waiting, the append may or may not be
        committed (the batch it joined is not cancelled). A request the backend
        refused alone (:class:`~vmv_sync.storage.refusals.ClaimConflict`,
        :class:`~vmv_sync.storage.refusals.StaleEpoch`) raises that refusal; the rest
        of its batch is committed.
        """
        if not self._accepting:
            raise StorageError(f"workshop {workshop_id}: the store is closing")
        request = PendingAppend(workshop_id, updates, claims, epoch)
        self._pending.append(request)
        self._wakeup.set()
        await request.done.wait()
        if request.refusal is not None:
            raise request.refusal
        if request.error is not None:
            raise StorageError(request.error) from request.cause
        return request.seq

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer loop; start it in the store's task group with ``tg.start``."""
        self._started = True
        task_status.started()
        try:
            while True:
                if not self._pending:
                    if not self._accepting:
                        return
                    await self._wakeup.wait()
                    self._wakeup = anyio.Event()
                    continue
                batch, self._pending = self._pending, []
                with anyio.CancelScope(shield=True):
                    await self._commit(batch)
        finally:
            # Only reached with work left when the writer is cancelled: say so.
            self._accepting = False
            for request in self._pending:
                request.fail(f"workshop {request.workshop_id}: the store closed", None)
            self._pending = []
            self._done.set()

    async def aclose(self) -> None:
        """Refuse new appends, let the writer commit the queued ones, wait for it.

        Safe to call from any task and more than once; shielded, so a shutdown that
        is being cancelled still flushes.
        """
        self._accepting = False
        self._wakeup.set()
        if not self._started:
            return
        with anyio.CancelScope(shield=True):
            await self._done.wait()

    async def _commit(self, batch: list[PendingAppend]) -> None:
        try:
            seqs = await self._commit_batch(batch)
            if len(seqs) != len(batch):
                raise RuntimeError(f"commit_batch returned {len(seqs)} seqs for {len(batch)} appends")
        except self._failures as exc:
            by_workshop: dict[str, list[PendingAppend]] = {}
            for request in batch:
                by_workshop.setdefault(request.workshop_id, []).append(request)
            if len(by_workshop) > 1:
                # One workshop's failure (a constraint, a corrupt page, a trigger) must not
                # fail its neighbours in the batch: commit each workshop's appends alone.
                # (A full disk fails them all again, as it should.)
                logger.warning("%s: a batch of %d workshops failed (%s); committing each alone", self._name, len(by_workshop), exc)
                for group in by_workshop.values():
                    await self._commit(group)
                return
            workshops = ", ".join(sorted(by_workshop))
            message = f"could not commit {len(batch)} appends (workshops {workshops}): {exc}"
            logger.error("%s: %s", self._name, message)
            for request in batch:
                request.fail(message, exc)
            return
        except BaseException as exc:
            for request in batch:
                request.fail(f"internal error while committing: {exc!r}", exc)
            raise
        self.commits += 1
        self.appends += len(batch)
        self.max_batch = max(self.max_batch, len(batch))
        for request, result in zip(batch, seqs, strict=True):
            if isinstance(result, StorageError):
                request.refusal = result
            else:
                request.seq = result
            request.done.set()
