"""Coalescing of queued frames for one peer (the writer's catch-up path)."""

from __future__ import annotations

from pycrdt import Array, Doc

from vmv_sync.protocol import (
    Awareness,
    Saved,
    SyncUpdate,
    decode_awareness_update,
    encode_awareness,
    encode_awareness_update,
    encode_saved,
    encode_sync_update,
    parse_message,
)
from vmv_sync.server.connection import coalesce_frames


def test_updates_and_awareness_runs_merge_in_order() -> None:
    source = Doc()
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    for i in range(5):
        source.get("messages", type=Array).append(i)
    frames = [encode_sync_update(u) for u in updates[:3]]
    frames.append(encode_saved(2))
    frames += [encode_sync_update(u) for u in updates[3:]]
    frames.append(encode_awareness(encode_awareness_update([(1, 1, '{"x": 1}'), (2, 1, '{"y": 1}')])))
    frames.append(encode_awareness(encode_awareness_update([(1, 2, '{"x": 2}')])))

    out = [parse_message(f) for f in coalesce_frames(frames)]

    assert [type(m) for m in out] == [SyncUpdate, Saved, SyncUpdate, Awareness]
    replica = Doc()
    for message in out:
        if isinstance(message, SyncUpdate):
            replica.apply_update(message.update)
    assert replica.get("messages", type=Array).to_py() == [0, 1, 2, 3, 4]
    assert isinstance(out[3], Awareness)
    entries = {e.client_id: (e.clock, e.state) for e in decode_awareness_update(out[3].update)}
    assert entries == {1: (2, {"x": 2}), 2: (1, {"y": 1})}


def test_single_frames_pass_through() -> None:
    frame = encode_saved(3)
    assert coalesce_frames([frame]) == [frame]
