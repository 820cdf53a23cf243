"""Which participant owns each Yjs client id of one workshop: a stateful registry.

The integrity rule that needs it (integrity.py): the first participant to write under
a client id, from clock 0, owns it, durably (the claim is committed with the update
that made it), and nobody else may write new structs under it. Announcing an id in
awareness before writing under it claims it too, so nobody can squat an id learnt
there. Ids written before ownership was recorded, or with authentication off, stay
unclaimable.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from ..errors import ClientIdTaken
from ..protocol.update import UpdateSummary

__all__ = ("ClientIds", "SERVER_OWNER")

#: The owner recorded for the server's own client ids (no participant id has an "@").
SERVER_OWNER = "@server"


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
