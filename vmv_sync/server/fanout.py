"""Fan-out of one committed batch: every peer gets each frame encoded once, then ``saved``.

This runs after the commit (the durability order of docs/protocol.md): a peer never
receives an update the store could still lose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pycrdt import merge_updates

from ..protocol import encode_saved, encode_sync_update
from .connection import Connection
from .origins import Incoming

__all__ = ("relay",)


def relay(connections: Iterable[Connection], applied: Sequence[Incoming]) -> None:
    """Enqueue the batch to every synced peer, each frame encoded once, then acknowledge.

    A peer that sent nothing in this batch gets one frame with all the batch's
    updates merged; a peer that sent some gets the others' updates one by one
    (it must not receive its own back, and merging per peer would cost more).
    """
    # Only peers that have had their sync step 2: until then an update could
    # reach them before the history it builds on (a gap; see protocol/update.py),
    # and their step 2, computed later, holds it anyway.
    peers = [peer for peer in connections if peer.synced]
    senders = {id(item.conn) for item in applied if item.conn is not None}
    frames = [encode_sync_update(item.update) for item in applied]
    if len(applied) > 1:
        merged = encode_sync_update(merge_updates(*(item.update for item in applied)))
    else:
        merged = frames[0]
    for peer in peers:
        if id(peer) not in senders:
            peer.enqueue(merged)
            continue
        for item, frame in zip(applied, frames, strict=False):
            if item.conn is not peer:
                peer.enqueue(frame)
    acked: dict[int, tuple[Connection, int]] = {}
    for item in applied:
        conn = item.conn
        if conn is not None and conn.wants_saved:
            acked[conn.id] = (conn, item.number)
    for conn, number in acked.values():
        conn.enqueue(encode_saved(number))
