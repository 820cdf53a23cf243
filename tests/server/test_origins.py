"""The typed origins of an update (server/origins.py): which carry a connection."""

from __future__ import annotations

import dataclasses

import pytest

from vmv_sync.server.auth import Principal
from vmv_sync.server.connection import Connection
from vmv_sync.server.origins import FromClient, FromServer, Incoming

from .test_room import RecordingChannel


def test_a_clients_update_carries_its_connection_the_servers_none() -> None:
    conn = Connection("w", RecordingChannel(), principal=Principal("p-ann", "Ann", "participant", "w"))
    from_ann = Incoming(FromClient(conn), b"\x00\x00", number=3)
    assert from_ann.conn is conn and from_ann.number == 3
    join = Incoming(FromServer("join"), b"\x00\x00")
    assert join.conn is None and join.number == 0 and join.origin == FromServer("join")


def test_origins_are_frozen_values() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FromServer("containers").reason = "other"  # type: ignore[misc]
    assert FromServer("a") == FromServer("a") and FromServer("a") != FromServer("b")
