"""The rules every store follows, as pure functions (one place, so the stores agree).

Validation runs before an ``append`` joins a group-commit batch, so one bad call
fails alone instead of failing everyone in its batch; :func:`history_boundary` is
the compaction rule of docs/storage.md ("History window").
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence

__all__ = (
    "check_updates",
    "check_claims",
    "check_epoch",
    "history_boundary",
    "compaction_due",
    "new_secret",
    "MAX_CLIENT_ID",
)

#: The largest client id a store keeps: SQLite's INTEGER is a signed 64-bit number.
#: Yjs ids are below 2**53 (JavaScript's safe integers); a hand-made update could
#: carry more, and would be refused here rather than fail a whole commit batch.
MAX_CLIENT_ID = 2**63 - 1


def compaction_due(updates: int, size: int, *, max_updates: int, max_bytes: int) -> bool:
    """The one compaction policy (server rooms and client replicas): fold the log into a
    snapshot once ``updates`` rows or ``size`` bytes follow the latest snapshot.

    Example:
        >>> compaction_due(10, 100, max_updates=2000, max_bytes=8 << 20)
        False
    """
    return updates >= max_updates or size >= max_bytes


def check_updates(updates: Sequence[bytes]) -> list[bytes]:
    """Validate ``append`` input before it joins a batch, so a bad call fails alone.

    A ``str`` is rejected explicitly: it is a sequence too, and iterating it would
    store one "update" per character.
    """
    if isinstance(updates, (bytes, bytearray, memoryview, str)):
        raise TypeError("append() takes a sequence of updates, not a single update")
    out = []
    for u in updates:
        if not isinstance(u, (bytes, bytearray, memoryview)):
            raise TypeError(f"a Yjs update must be bytes, not {type(u).__name__}")
        out.append(bytes(u))
    return out


def check_claims(claims: Mapping[int, str] | None) -> dict[int, str] | None:
    """Validate client-id claims (Yjs client id -> owner) before they join a batch.

    Returns ``None`` for no claims, so the commit path can skip them without even
    looking at an empty dict. A client id is an ``int`` in ``[0, MAX_CLIENT_ID]``
    (``bool`` is refused: ``True`` is an int to Python, never a Yjs client id); an
    owner is a non-empty ``str`` (a participant id, or a reserved owner like
    ``"@server"``).
    """
    if not claims:
        return None
    if not isinstance(claims, Mapping):
        raise TypeError(f"claims must be a mapping of client id to owner, not {type(claims).__name__}")
    out: dict[int, str] = {}
    for client_id, owner in claims.items():
        if not isinstance(client_id, int) or isinstance(client_id, bool):
            raise TypeError(f"a Yjs client id must be an int, not {type(client_id).__name__}")
        if not 0 <= client_id <= MAX_CLIENT_ID:
            raise ValueError(f"client id {client_id} is outside [0, {MAX_CLIENT_ID}]")
        if not isinstance(owner, str) or not owner:
            raise TypeError(f"the owner of client id {client_id} must be a non-empty str, not {owner!r}")
        out[client_id] = owner
    return out


def check_epoch(epoch: int | None) -> int | None:
    """Validate a fencing epoch before it joins a batch: ``None`` or an int in ``[0, 2**63-1]``."""
    if epoch is None:
        return None
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise TypeError(f"an epoch must be an int, not {type(epoch).__name__}")
    if not 0 <= epoch <= MAX_CLIENT_ID:
        raise ValueError(f"epoch {epoch} is outside [0, {MAX_CLIENT_ID}]")
    return epoch


def new_secret() -> str:
    """A fresh HS256 token secret (64 URL-safe characters), as the server always made."""
    return secrets.token_urlsafe(48)


def history_boundary(
    history_from: int,
    snapshot_seqs: Iterable[int],
    upto_seq: int,
    first_in_window: int | None,
) -> int:
    """The new history boundary ``d`` after a compaction up to ``upto_seq``.

    Updates with ``seq <= d`` are deleted and the snapshot at ``d`` (if ``d > 0``) is
    the history base, so the kept updates always follow their base without a gap. ``d``
    can only be a point where a full state exists: the current boundary, a kept
    snapshot, or the new snapshot. It is the largest such point that is not newer
    than the first covered update inside the history window (``first_in_window``,
    ``None`` when no covered update is inside it), so everything inside the window is
    kept. Time is turned into a sequence bound here, once: a clock stepping backwards
    can only make more history stay, never hide an update.
    """
    limit = upto_seq if first_in_window is None else min(upto_seq, first_in_window - 1)
    candidates = [history_from, upto_seq, *snapshot_seqs]
    return max(s for s in candidates if history_from <= s <= limit)
