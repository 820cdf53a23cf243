"""lib0 variable-length integers and byte strings, with bounds checks.

pycrdt's ``Decoder`` raises ``IndexError``/``RuntimeError`` on truncated input; a
server must turn any malformed frame into a clear 4400 instead, so this reader
checks every bound and raises :class:`~vmv_sync.errors.MalformedMessage`.
"""

from __future__ import annotations

from ..errors import MalformedMessage

__all__ = ("Reader", "write_var_uint", "write_var_bytes", "decode_state_vector")

#: JavaScript's Number.MAX_SAFE_INTEGER: lib0 never encodes more.
_MAX_UINT = 2**53 - 1


def write_var_uint(num: int) -> bytes:
    out = bytearray()
    while num > 127:
        out.append(128 | (num & 127))
        num >>= 7
    out.append(num)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


class Reader:
    """A cursor over one frame."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read_var_uint(self) -> int:
        data = self.data
        pos = self.pos
        try:
            byte = data[pos]
            if byte < 128:  # the common one-byte case
                self.pos = pos + 1
                return byte
            # Locals only in the loop: client ids are 4 to 8 bytes long and every
            # struct of an update names one or two (the update summary's hot path).
            num = byte & 127
            shift = 7
            pos += 1
            while True:
                byte = data[pos]
                pos += 1
                num |= (byte & 127) << shift
                if byte < 128:
                    break
                shift += 7
                if shift > 53:
                    raise MalformedMessage("malformed message: a number is too large")
        except IndexError:
            raise MalformedMessage("truncated message: a length or number is cut short") from None
        if num > _MAX_UINT:
            raise MalformedMessage("malformed message: a number is too large")
        self.pos = pos
        return num

    def read_var_bytes(self) -> bytes:
        length = self.read_var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise MalformedMessage("truncated message: a payload is shorter than its length")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def read_var_string(self) -> str:
        raw = self.read_var_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("malformed message: a string is not valid UTF-8") from exc

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def decode_state_vector(state_vector: bytes) -> dict[int, int]:
    """A Yjs state vector as {client id: clock}.

    yrs writes the entries in hash-map order, so two equal state vectors may differ
    byte for byte; compare the decoded mappings. Raises MalformedMessage if it is
    truncated or followed by anything (tests/fuzz: trailing bytes passed unseen).
    """
    reader = Reader(state_vector)
    count = reader.read_var_uint()
    result: dict[int, int] = {}
    for _ in range(count):  # each entry reads at least 2 bytes: bounded by the length
        client = reader.read_var_uint()
        result[client] = reader.read_var_uint()
    if not reader.done:
        raise MalformedMessage("malformed state vector: trailing bytes")
    return result
