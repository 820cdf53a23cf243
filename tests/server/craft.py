"""Hand-made Yjs v1 updates for attacks the Yjs libraries would never produce."""

from __future__ import annotations

from vmv_sync.protocol.varint import write_var_bytes, write_var_uint

_DELETED = 1


def deleted_struct(client: int, clock: int, length: int, root: str = "mission") -> bytes:
    """One item of deleted content at (client, clock) covering ``length`` clocks, parented under ``root``.

    27 bytes or so: what a squatter sends to take a victim's next clocks.
    """
    item = bytes([_DELETED]) + write_var_uint(1) + write_var_bytes(root.encode()) + write_var_uint(length)
    structs = write_var_uint(1) + write_var_uint(1) + write_var_uint(client) + write_var_uint(clock) + item
    return structs + write_var_uint(0)  # no delete set


def any_item(client: int, root: str, key: str | None, text: str = "x") -> bytes:
    """One item of Any content (a string) at (client, 0) directly under ``root``,
    keyed by ``key`` (a map entry) or not (a sequence item)."""
    info = 8 | (0x20 if key is not None else 0)
    item = bytes([info]) + write_var_uint(1) + write_var_bytes(root.encode())
    if key is not None:
        item += write_var_bytes(key.encode())
    item += write_var_uint(1) + bytes([119]) + write_var_bytes(text.encode())
    structs = write_var_uint(1) + write_var_uint(1) + write_var_uint(client) + write_var_uint(0) + item
    return structs + write_var_uint(0)
