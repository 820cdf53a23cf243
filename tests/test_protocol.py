"""The y-protocols codec and the update reader, without a server."""

from __future__ import annotations

import pytest
from pycrdt import Array, Doc, Map, Text

from vmv_sync.errors import MalformedMessage
from vmv_sync.protocol import (
    Awareness,
    QueryAwareness,
    Saved,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    TokenRefresh,
    TokenRefreshed,
    decode_awareness_update,
    decode_state_vector,
    encode_awareness,
    encode_awareness_update,
    encode_query_awareness,
    encode_saved,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    encode_token_refresh,
    encode_token_refreshed,
    parse_message,
)
from vmv_sync.protocol.update import summarize_update


def test_round_trip_every_message() -> None:
    assert parse_message(encode_sync_step1(b"\x01\x02")) == SyncStep1(b"\x01\x02")
    assert parse_message(encode_sync_step2(b"abc")) == SyncStep2(b"abc")
    assert parse_message(encode_sync_update(b"x" * 300)) == SyncUpdate(b"x" * 300)
    assert parse_message(encode_awareness(b"\x00")) == Awareness(b"\x00")
    assert parse_message(encode_query_awareness()) == QueryAwareness()
    assert parse_message(encode_saved(70000)) == Saved(70000)
    # 101 has one payload per direction: a token to the server, its expiry back
    assert parse_message(encode_token_refresh("eyJ.a.b")) == TokenRefresh("eyJ.a.b")
    assert parse_message(encode_token_refreshed(1_900_000_000), from_server=True) == TokenRefreshed(1_900_000_000)
    assert encode_token_refresh("ab") == b"\x65\x02ab" and encode_token_refreshed(0) == b"\x65\x00"
    assert "eyJ" not in repr(TokenRefresh("eyJ.a.b"))  # a credential never reaches a log line


@pytest.mark.parametrize(
    ("frame", "from_server"),
    [(b"\x65", False), (b"\x65\x05ab", False), (b"\x65\x02\xff\xfe", False), (b"\x65\x01a\x00", False),
     (b"\x65", True), (b"\x65\x01\x00", True), (b"\x65\xff", True)],
)  # fmt: skip
def test_malformed_token_messages_raise(frame: bytes, from_server: bool) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(frame, from_server=from_server)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x07", b"\x00", b"\x00\x05\x00", b"\x00\x02\x05ab", b"\x00\x02\x01ab", b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff"],
)
def test_malformed_frames_raise(frame: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(frame)


def test_awareness_payload_validated() -> None:
    good = encode_awareness_update([(7, 3, '{"user": {"id": "p"}}'), (8, 1, "null")])
    entries = decode_awareness_update(good)
    assert [(e.client_id, e.clock, e.state) for e in entries] == [(7, 3, {"user": {"id": "p"}}), (8, 1, None)]
    for bad in ["{bad", "[1, 2]", '"text"']:
        with pytest.raises(MalformedMessage):
            decode_awareness_update(encode_awareness_update([(1, 1, bad)]))


def _transaction_updates(doc: Doc) -> list[bytes]:
    captured: list[bytes] = []
    doc.observe(lambda event: captured.append(event.update))
    return captured


def test_summary_names_roots_and_detects_pending() -> None:
    doc = Doc()
    updates = _transaction_updates(doc)
    with doc.transaction():
        doc.get("meta", type=Map)["title"] = "T"
        doc.get("messages", type=Array).append(Map({"author": "p", "text": "héllo 😀"}))
        doc.get("mission", type=Text).insert(0, "Be 😀 kind")
    doc.get("mission", type=Text).insert(2, "X")
    del doc.get("messages", type=Array)[0]
    first, second, third = updates
    summary = summarize_update(first)
    assert summary.roots == {"meta", "messages", "mission"}
    fresh = Doc()
    assert not summarize_update(second).integrated_in(decode_state_vector(fresh.get_state()))
    fresh.apply_update(second)  # parked as pending: the state vector does not move
    assert not summarize_update(second).integrated_in(decode_state_vector(fresh.get_state()))
    fresh.apply_update(first)
    state = decode_state_vector(fresh.get_state())
    assert summarize_update(first).integrated_in(state) and summarize_update(second).integrated_in(state)
    # a delete of something the receiver never saw is pending too
    assert not summarize_update(third).integrated_in(decode_state_vector(Doc().get_state()))
    assert summarize_update(third).integrated_in(decode_state_vector(doc.get_state()))


@pytest.mark.parametrize("garbage", [b"\xff" * 30, b"\x01\x01\x05\x00\x77", b"\x01"])
def test_summary_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(MalformedMessage):
        summarize_update(garbage)
