"""In-process tests of :class:`vmv_sync.server.presence_table.RoomAwareness`, the room's presence table.

Connections are real :class:`Connection` objects on a recording channel. Time: the
registry reads ``time.monotonic`` through its module's ``time`` reference, which the
``clock`` fixture replaces with a settable fake (the event loop's clock is untouched).
"""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

from vmv_sync.errors import Forbidden, MessageTooLarge, TooManyMessages
from vmv_sync.protocol import Awareness, AwarenessEntry, decode_awareness_update, encode_awareness_update, parse_message
from vmv_sync.server import presence_table as awareness_module
from vmv_sync.server.auth import Principal
from vmv_sync.server.connection import Connection
from vmv_sync.server.presence_table import FRAME_BYTES, FRAME_ENTRIES, RoomAwareness

from .test_room import RecordingChannel

TIMEOUT = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(awareness_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def conn(pid: str | None = None) -> Connection:
    principal = Principal(pid, pid.upper(), "participant", "w1") if pid else None
    return Connection("w1", RecordingChannel(), principal=principal)


def entries(*items: tuple[int, int, dict[str, Any] | None]) -> list[AwarenessEntry]:
    """Entries as the wire carries them (encoded, then decoded by the protocol's reader)."""
    payload = encode_awareness_update([(cid, clock, json.dumps(state)) for cid, clock, state in items])
    return decode_awareness_update(payload)


def decode_frames(frames: list[bytes]) -> list[list[tuple[int, int, Any]]]:
    out = []
    for frame in frames:
        message = parse_message(frame)
        assert isinstance(message, Awareness)
        out.append([(e.client_id, e.clock, e.state) for e in decode_awareness_update(message.update)])
    return out


def changes(registry: RoomAwareness) -> list[tuple[int, int, Any]]:
    return [entry for frame in decode_frames(registry.take_changes()) for entry in frame]


def live(registry: RoomAwareness) -> list[tuple[int, int, Any]]:
    return [entry for frame in decode_frames(registry.full_frames()) for entry in frame]


def test_apply_records_the_latest_state_once(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    a = conn()
    registry.apply(a, entries((7, 1, {"cursor": 1})))
    assert changes(registry) == [(7, 1, {"cursor": 1})]
    assert changes(registry) == []  # taken
    registry.apply(a, entries((7, 2, {"cursor": 2}), (8, 1, {"cursor": 9})))
    registry.apply(a, entries((7, 3, {"cursor": 3})))
    assert changes(registry) == [(7, 3, {"cursor": 3}), (8, 1, {"cursor": 9})]  # coalesced, latest only
    assert live(registry) == [(7, 3, {"cursor": 3}), (8, 1, {"cursor": 9})]
    assert a.awareness_ids == {7, 8}


def test_echoes_and_older_clocks_change_nothing(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    a, b = conn(), conn()
    registry.apply(a, entries((7, 5, {"x": 1})))
    registry.take_changes()
    registry.apply(b, entries((7, 5, {"x": 1})))  # a peer echoing what the server relayed
    registry.apply(a, entries((7, 4, {"x": 0})))  # older
    assert changes(registry) == []
    assert live(registry) == [(7, 5, {"x": 1})]
    assert b.awareness_ids == set()


def test_removal_by_the_owner_and_at_disconnect(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    a, b = conn(), conn()
    registry.apply(a, entries((1, 1, {"n": 1}), (2, 1, {"n": 2})))
    registry.apply(b, entries((3, 1, {"n": 3})))
    registry.take_changes()

    registry.apply(a, entries((1, 2, None)))  # the owner removes one of its states
    assert changes(registry) == [(1, 2, None)]
    registry.remove_connection(a)  # the socket closed: the server removes the rest
    assert changes(registry) == [(2, 1, None)]
    assert a.awareness_ids == set()
    assert live(registry) == [(3, 1, {"n": 3})]


def test_a_removal_sent_by_another_connection_is_ignored(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    a, b = conn("ann"), conn("bob")
    registry.apply(a, entries((1, 1, {"n": 1})))
    registry.take_changes()
    registry.apply(b, entries((1, 2, None)))  # presence is the server's to clear
    assert changes(registry) == []
    assert live(registry) == [(1, 1, {"n": 1})]


def test_states_expire_unless_renewed(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    a = conn()
    registry.apply(a, entries((1, 1, {"n": 1}), (2, 1, {"n": 2})))
    registry.take_changes()
    clock.now += TIMEOUT - 1
    registry.apply(a, entries((2, 1, {"n": 2})))  # the owner renews 2 (same clock: a keep-alive)
    assert registry.expire() == 0
    clock.now += 2  # 1 is now TIMEOUT + 1 old, 2 only 2 s
    assert registry.expire() == 1
    assert changes(registry) == [(1, 1, None)]
    assert live(registry) == [(2, 1, {"n": 2})]
    clock.now += TIMEOUT
    assert registry.expire() == 1
    assert live(registry) == []


def test_a_removed_state_is_remembered_then_forgotten(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    a, b = conn(), conn()
    registry.apply(b, entries((2, 1, {"b": True})))  # b's first frame is behind it
    registry.apply(a, entries((1, 4, {"n": 1})))
    registry.remove_connection(a)
    registry.take_changes()
    registry.apply(b, entries((1, 4, {"n": 1})))  # a late echo of the removed state
    assert changes(registry) == []
    assert live(registry) == [(2, 1, {"b": True})]
    clock.now += 2 * TIMEOUT + 1
    registry.expire()  # forgets the removed entry's clock
    registry.apply(b, entries((1, 4, {"n": 1})))
    assert (1, 4, {"n": 1}) in live(registry)


def test_a_reconnect_reclaims_its_removed_state_one_clock_later(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    old = conn("ann")
    registry.apply(old, entries((1, 4, {"n": 1})))
    registry.remove_connection(old)
    registry.take_changes()
    new = conn("ann")
    registry.apply(new, entries((1, 4, {"n": 1})))  # its first frame, with the clock the server removed
    assert changes(registry) == [(1, 5, {"n": 1})]  # peers would ignore clock 4 as already removed
    registry.apply(new, entries((1, 5, {"n": 2})))  # its own next clock, shifted by the same offset
    assert live(registry) == [(1, 6, {"n": 2})]


def test_another_participants_client_id_is_refused_as_a_spoof(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    ann, bob = conn("ann"), conn("bob")
    registry.apply(ann, entries((5, 1, {"cursor": 1})))
    with pytest.raises(Forbidden) as refused:
        registry.apply(bob, entries((5, 2, {"cursor": 666})))
    assert refused.value.code == 4403
    assert live(registry) == [(5, 1, {"cursor": 1})]
    # the same participant on a new socket (a reconnect) takes its id over
    ann2 = conn("ann")
    registry.apply(ann2, entries((5, 2, {"cursor": 2})))
    assert live(registry) == [(5, 2, {"cursor": 2})]


def test_a_state_naming_another_user_is_refused(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    bob = conn("bob")
    with pytest.raises(Forbidden) as refused:
        registry.apply(bob, entries((9, 1, {"user": {"id": "ann", "name": "ANN"}})))
    assert refused.value.code == 4403
    registry.apply(bob, entries((9, 1, {"user": {"id": "bob", "name": "BOB", "role": "participant"}})))
    assert live(registry) == [(9, 1, {"user": {"id": "bob", "name": "BOB", "role": "participant"}})]
    with pytest.raises(Forbidden):
        registry.apply(bob, entries((9, 2, {"user": {"id": "bob", "role": "facilitator"}})))


def test_without_authentication_a_newer_connection_takes_a_client_id_over(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    a, b = conn(), conn()
    registry.apply(a, entries((5, 1, {"who": "a"})))
    registry.apply(b, entries((5, 2, {"who": "b"})))
    assert live(registry) == [(5, 2, {"who": "b"})]
    assert 5 in b.awareness_ids
    registry.remove_connection(a)  # a no longer owns it: nothing removed
    assert live(registry) == [(5, 2, {"who": "b"})]


def test_client_ids_per_connection_are_capped_with_4429(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT, max_clients_per_connection=2)
    a, b = conn(), conn()
    registry.apply(a, entries((1, 1, {}), (2, 1, {})))
    registry.apply(a, entries((2, 2, {"again": True})))  # an id it has: fine
    with pytest.raises(TooManyMessages) as refused:
        registry.apply(a, entries((3, 1, {})))
    assert refused.value.code == 4429
    assert a.awareness_ids == {1, 2}
    registry.apply(b, entries((3, 1, {}), (4, 1, {})))  # the cap is per connection
    assert {cid for cid, _, _ in live(registry)} == {1, 2, 3, 4}


def test_a_state_over_the_size_limit_is_refused_with_4413(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT, max_state_bytes=64)
    a = conn()
    registry.apply(a, entries((1, 1, {"s": "x" * 40})))
    with pytest.raises(MessageTooLarge) as refused:
        registry.apply(a, entries((1, 2, {"s": "x" * 100})))
    assert refused.value.code == 4413
    assert live(registry) == [(1, 1, {"s": "x" * 40})]


def test_frames_are_split_at_frame_entries(clock: FakeClock) -> None:
    count = 2 * FRAME_ENTRIES + 1
    registry = RoomAwareness(TIMEOUT, max_clients_per_connection=count)
    registry.apply(conn(), entries(*((i, 1, {"i": i}) for i in range(1, count + 1))))
    for frames in (registry.full_frames(), registry.take_changes()):
        decoded = decode_frames(frames)
        assert [len(frame) for frame in decoded] == [FRAME_ENTRIES, FRAME_ENTRIES, 1]
        assert [cid for frame in decoded for cid, _, _ in frame] == list(range(1, count + 1))


def test_frames_are_split_at_frame_bytes(clock: FakeClock) -> None:
    state_size = FRAME_BYTES // 3
    registry = RoomAwareness(TIMEOUT, max_state_bytes=2 * state_size)
    registry.apply(conn(), entries(*((i, 1, {"s": "x" * state_size}) for i in range(1, 6))))
    frames = registry.full_frames()
    decoded = decode_frames(frames)
    assert len(decoded) > 1
    assert all(len(frame) <= FRAME_BYTES + 1024 for frame in frames)
    assert [cid for frame in decoded for cid, _, _ in frame] == [1, 2, 3, 4, 5]


def test_a_removed_client_id_cannot_be_taken_by_another_participant(clock: FakeClock) -> None:
    registry = RoomAwareness(TIMEOUT)
    ann, bob = conn("ann"), conn("bob")
    registry.apply(ann, entries((5, 3, {"cursor": 1})))
    registry.remove_connection(ann)
    registry.take_changes()
    registry.apply(bob, entries((5, 3, {"cursor": 2})))  # bob's first frame, the removed clock: an echo
    assert live(registry) == []
    with pytest.raises(Forbidden):
        registry.apply(bob, entries((5, 4, {"cursor": 2})))
    assert live(registry) == [] and changes(registry) == []
