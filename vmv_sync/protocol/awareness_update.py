"""The awareness update payload (y-protocols/awareness), decoded with validation.

The bytes inside an awareness message (protocol/messages.py); what a state says is
vmv_sync/presence.py's, the server's table of states server/presence_table.py's.

A payload is ``n`` entries of (client id, clock, JSON state or ``null``). The
server must never forward invalid JSON, so decoding parses every state and
rejects anything that is not a JSON object or ``null``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import MalformedMessage
from .varint import Reader, write_var_bytes, write_var_uint

__all__ = ("AwarenessEntry", "decode_awareness_update", "encode_awareness_update", "merge_awareness_payloads")


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    #: the parsed state; ``None`` means "this client is gone"
    state: dict[str, Any] | None
    #: the state as JSON text, kept so relaying never re-serialises
    state_json: str


def decode_awareness_update(payload: bytes) -> list[AwarenessEntry]:
    reader = Reader(payload)
    count = reader.read_var_uint()
    if count > 10_000:
        raise MalformedMessage("awareness update lists too many clients")
    entries: list[AwarenessEntry] = []
    for _ in range(count):
        client_id = reader.read_var_uint()
        clock = reader.read_var_uint()
        text = reader.read_var_string()
        try:
            state = json.loads(text, parse_constant=_refuse_constant) if text else None
        except ValueError as exc:  # JSONDecodeError, and integers past int_max_str_digits
            raise MalformedMessage("awareness state is not valid JSON") from exc
        except RecursionError as exc:  # found by tests/fuzz: {"a": nested 5,000 deep
            raise MalformedMessage("awareness state nests too deeply") from exc
        if state is not None and not isinstance(state, dict):
            raise MalformedMessage("awareness state must be a JSON object or null")
        entries.append(AwarenessEntry(client_id, clock, state, text if state is not None else "null"))
    if not reader.done:
        raise MalformedMessage("malformed awareness update: trailing bytes")
    return entries


def _refuse_constant(name: str) -> None:
    """NaN, Infinity, -Infinity: Python's json reads them, JSON.parse in every browser throws."""
    raise ValueError(f"{name} is not JSON")


def encode_awareness_update(entries: Iterable[tuple[int, int, str]]) -> bytes:
    """Encode (client id, clock, state JSON text) triples."""
    items = list(entries)
    parts = [write_var_uint(len(items))]
    for client_id, clock, state_json in items:
        parts.append(write_var_uint(client_id))
        parts.append(write_var_uint(clock))
        parts.append(write_var_bytes(state_json.encode("utf-8")))
    return b"".join(parts)


def merge_awareness_payloads(payloads: list[bytes]) -> bytes:
    """Several awareness updates as one: the latest entry of each client id wins.

    Works on the bytes (no JSON parsing): later payloads were produced later, so an
    entry in a later payload supersedes the same client's entry in an earlier one.
    """
    latest: dict[int, tuple[int, bytes]] = {}
    for payload in payloads:
        reader = Reader(payload)
        for _ in range(reader.read_var_uint()):
            client_id = reader.read_var_uint()
            clock = reader.read_var_uint()
            latest[client_id] = (clock, reader.read_var_bytes())
    parts = [write_var_uint(len(latest))]
    for client_id, (clock, state) in latest.items():
        parts.append(write_var_uint(client_id))
        parts.append(write_var_uint(clock))
        parts.append(write_var_bytes(state))
    return b"".join(parts)
