"""A relay's copy of the owner's awareness: what a new client of the relay is shown at once."""

from __future__ import annotations

from ...protocol import encode_awareness, encode_awareness_update, parse_message
from ...protocol.varint import Reader

__all__ = ("AwarenessMirror",)


class AwarenessMirror:
    """The owner's awareness as relayed: client id -> (clock, state JSON), live ones only."""

    def __init__(self) -> None:
        self.states: dict[int, tuple[int, str]] = {}

    def apply(self, frame: bytes) -> None:
        """Take the frame's entries, unless older than what is held (a snapshot may come late).

        The owner validated every state already: nothing is parsed as JSON here, which
        would cost every relay the owner's work again for each cursor move.
        """
        message = parse_message(frame)
        reader = Reader(getattr(message, "update", b"\x00"))
        for _ in range(reader.read_var_uint()):
            client_id, clock, text = reader.read_var_uint(), reader.read_var_uint(), reader.read_var_string()
            held = self.states.get(client_id)
            if held is not None and held[0] > clock:
                continue
            if text in ("", "null"):
                self.states.pop(client_id, None)
            else:
                self.states[client_id] = (clock, text)

    def full_frame(self) -> bytes | None:
        if not self.states:
            return None
        return encode_awareness(
            encode_awareness_update((cid, clock, text) for cid, (clock, text) in self.states.items())
        )
