"""Where an update comes from: typed origins, as hocuspocus types its transaction origins.

Each step of a room's pipeline says which origins it applies to: a client's update is
admitted (integrity, client ids, quota, write rules) and acknowledged; the server's own
edits (joins, creation, containers) are neither checked nor acknowledged. With
several processes (server/cluster/), a client of another process is still a
``FromClient``: its connection is a ``RemoteConnection`` on the workshop's owner,
and what the owner publishes after a commit carries each update's origin as data
(node, connection) with the senders' counts, never a live object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, Union

from .connection import Connection

__all__ = ("FromClient", "FromServer", "Origin", "Incoming", "RoomLink")


@dataclass(frozen=True, slots=True)
class FromClient:
    """An update sent by a client over one connection (checked before it is applied)."""

    conn: Connection


@dataclass(frozen=True, slots=True)
class FromServer:
    """An edit the server makes itself (join, workshop creation, containers): never checked."""

    reason: str


#: Where an update comes from; the pipeline's steps say which origins they apply to.
Origin = Union[FromClient, FromServer]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One update on its way through the pipeline, with its origin."""

    origin: Origin
    update: bytes
    number: int = 0  # a client's running count, for its "saved" acknowledgement

    @property
    def conn(self) -> Connection | None:
        return self.origin.conn if isinstance(self.origin, FromClient) else None


class RoomLink(Protocol):
    """What ties an owner's room to other server processes (server/cluster/owner.py).

    ``None`` on a single process: the room then never calls any of this.
    """

    async def run(self) -> None:
        """Run the link's tasks for as long as the room runs."""
        ...

    async def append(self, updates: Sequence[bytes], claims: Mapping[int, str] | None) -> int:
        """The room's commit, fenced by the owner's epoch."""
        ...

    def committed(self, last_seq: int, applied: Sequence[Incoming]) -> None:
        """A batch is committed and relayed here: publish it for the other processes."""
        ...

    def awareness(self, frames: Sequence[bytes]) -> None:
        """Awareness changes sent to this room's peers: publish them too."""
        ...

    def sync_answered(self, conn: Connection, seq: int) -> None:
        """A remote peer's sync step 1 is due, holding everything up to ``seq``."""
        ...
