"""What makes an update admissible before anything of it is applied: integrity rules.

"Saved" must mean "in the document". yrs silently keeps an update out of the
document in three cases, and the server would still store, relay and acknowledge
it; so each is refused up front, for every connection, authentication on or off:

- a clock gap: the update's structs for a client start past the document's clock
  for that client (yrs would even integrate it, invisibly to sync; see
  :meth:`UpdateSummary.skips_ahead_of`);
- a missing dependency: an item names as its origin or parent, or a delete range
  names, a struct the document does not have (yrs parks it as *pending*);
- a clock range the document already has, written under someone else's client id:
  yrs ignores structs it has, so whoever writes first at a client's next clock
  decides what that client's later updates mean. Client ids therefore *belong* to
  participants (:class:`ClientIds`): the first participant to write under an id owns
  it, durably (the claim is committed with the update), and nobody else may write
  new structs under it. A client id can only be claimed from clock 0, so ids written
  before ownership was recorded (or with authentication off) stay unclaimable.

An update may also not advance one client's clock implausibly far in one go.
Structs the document already has (a resend, a peer's sync step 2 that overlaps)
are exact duplicates under an owned id and pass: yrs ignores them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from ..errors import ClientIdTaken, MalformedMessage
from ..protocol.update import UpdateSummary

__all__ = ("ClientIds", "SERVER_OWNER", "MAX_NEW_CLOCKS", "check_integrable", "is_panic")

#: The owner recorded for the server's own client ids (no participant id has an "@").
SERVER_OWNER = "@server"
#: Most clocks one update may add to one client (a clock is a character, an item or
#: a deleted range's length); past it the update is refused as implausible.
MAX_NEW_CLOCKS = 1 << 24
#: Yjs clocks and client ids are JavaScript numbers.
_MAX_SAFE = 2**53 - 1


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust panic surfacing from pycrdt (pyo3's PanicException).

    It derives from BaseException, so ``except Exception`` misses it; and a document
    that panicked mid-update may hold part of it, so it cannot be trusted afterwards.
    """
    return type(exc).__name__ == "PanicException"


def check_integrable(summary: UpdateSummary, state: Mapping[int, int]) -> None:
    """Raise MalformedMessage unless the document (``state``) can integrate all of the update."""
    sv = dict(state)
    if summary.structs and summary.skips_ahead_of(sv):
        raise MalformedMessage("the update skips changes the server does not have yet; reconnect to resync")
    if summary.missing_from(sv) is not None:
        raise MalformedMessage("the update depends on changes the server does not have; reconnect to resync")
    for client, added in summary.new_clocks(sv).items():
        if added > MAX_NEW_CLOCKS or summary.structs[client][1] > _MAX_SAFE:
            raise MalformedMessage(f"the update claims an implausible clock range for client {client}")


class ClientIds:
    """Which participant owns each Yjs client id of one workshop.

    Loaded from the store with the document; new claims are held in
    :attr:`pending` until the room commits them with the update that made them.
    """

    def __init__(self, owners: Mapping[int, str] | None = None) -> None:
        self._owners: dict[int, str] = dict(owners or {})
        #: claims made since the last commit: client id -> owner
        self.pending: dict[int, str] = {}

    def owner(self, client_id: int) -> str | None:
        return self._owners.get(client_id)

    def __len__(self) -> int:
        return len(self._owners)

    def check(self, summary: UpdateSummary, state: Mapping[int, int], owner: str) -> dict[int, str]:
        """The claims ``owner`` makes by writing ``summary``; raise if it writes under others' ids.

        Only structs past ``state`` count: the ones the document has are duplicates.
        Call :meth:`claim` with the result once the update is accepted.
        """
        claims: dict[int, str] = {}
        for client, (first, end) in summary.structs.items():
            have = state.get(client, 0)
            if end <= have:
                continue  # nothing new under this id: a duplicate, ignored by yrs
            current = self._owners.get(client)
            if current == owner:
                continue
            if current is not None or have > 0 or first > 0:
                raise ClientIdTaken(client)
            claims[client] = owner
        return claims

    def check_announced(self, client_ids: Iterable[int], state: Mapping[int, int], owner: str) -> dict[int, str]:
        """The claims ``owner`` makes by announcing ``client_ids`` in awareness; raise if one is another's.

        An id announced before anything was written under it is claimed for its announcer
        (others could learn it there and squat it first); ids with clocks but no owner
        (written before ownership, or with authentication off) stay unclaimable.
        """
        claims: dict[int, str] = {}
        for client in client_ids:
            current = self._owners.get(client)
            if current == owner:
                continue
            if current is not None:
                raise ClientIdTaken(client)
            if state.get(client, 0) == 0:
                claims[client] = owner
        return claims

    def unwritten(self, owner: str, state: Mapping[int, int]) -> int:
        """How many ids ``owner`` holds with nothing written under them (``state``)."""
        return sum(1 for client, who in self._owners.items() if who == owner and not state.get(client, 0))

    def claim(self, claims: Mapping[int, str]) -> None:
        for client, owner in claims.items():
            if client not in self._owners:
                self._owners[client] = owner
                self.pending[client] = owner

    def take_pending(self) -> dict[int, str]:
        """The claims to commit with the next append (and forget them as pending)."""
        pending, self.pending = self.pending, {}
        return pending

    def fresh_server_id(self, state: Mapping[int, int], rng: random.Random | None = None) -> int:
        """A client id for the server's own edits that nobody owns or has written, claimed now."""
        rng = rng or random.SystemRandom()
        for _ in range(1000):
            candidate = rng.randrange(1, 2**32)
            if candidate not in self._owners and candidate not in state:
                self.claim({candidate: SERVER_OWNER})
                return candidate
        raise RuntimeError("could not find a free client id")  # pragma: no cover - 2^32 ids
