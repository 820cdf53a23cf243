"""A reader of Yjs v1 updates: which structs an update adds and which ranges it deletes.

pycrdt applies updates but does not say whether one was integrated or parked as
"pending" for lack of a dependency, nor which root types it names. The write
guard needs both: an update that cannot be integrated now could be integrated
later, under the cover of someone else's update, so the guard refuses it, and an
update naming a root outside the contract is refused for everyone but the
facilitator. The format is lib0's (yjs/src/utils/UpdateDecoder.js, v1). And some
malformed updates make yrs panic instead of raising: :func:`is_panic` tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import MalformedMessage
from .varint import Reader

__all__ = ("EMPTY_UPDATE", "UpdateSummary", "summarize_update", "is_panic")

#: The Yjs update that changes nothing (no structs, no deletes).
EMPTY_UPDATE = b"\x00\x00"

#: yrs keeps clocks and lengths in 32 bits and silently wraps larger ones (a GC of
#: length 2**32 + 5 becomes 5), while Yjs peers keep them whole: refuse them
#: (tests/fuzz), so the server and its peers never disagree about a clock.
MAX_CLOCK = 2**32 - 1

# content refs
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust panic surfacing from pycrdt (pyo3's PanicException).

    It derives from BaseException, so ``except Exception`` misses it; and a document
    that panicked mid-update may hold part of it, so it cannot be trusted afterwards.
    """
    return type(exc).__name__ == "PanicException"


@dataclass
class UpdateSummary:
    #: client id -> (first clock, end clock) of the structs this update carries
    structs: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: client id -> highest clock + 1 that a delete range of this update touches
    deletes: dict[int, int] = field(default_factory=dict)
    #: root type names the update's items name directly as their parent
    roots: set[str] = field(default_factory=set)
    #: (root name, keyed) for those items: keyed ones (a map entry) name a key
    root_items: set[tuple[str, bool]] = field(default_factory=set)
    #: the update embeds a sub-document
    subdocs: bool = False
    #: number of structs
    count: int = 0
    #: client id -> highest clock + 1 that an item of this update names as its left
    #: or right origin or as its parent: the items it needs to be integrated
    refs: dict[int, int] = field(default_factory=dict)
    #: how many items name each placement anchor: a left origin ``(client, clock)``, or
    #: ``("head", parent)`` for a sequence item with no left origin (placed from its
    #: parent's start). Read by :meth:`placement_cost`.
    anchors: dict[tuple[object, ...], int] = field(default_factory=dict)

    def placement_cost(self, sequence_size: int) -> int:
        """An upper bound on the items yrs scans to place this update's items.

        yrs (like Yjs) places an item by scanning from its left origin (or from its
        parent's start when it has none) past the items concurrently inserted at the
        same place. So an item anchored outside this update may scan up to the size
        of a sequence of the document (``sequence_size``: the largest one), and items
        of this update sharing one anchor scan each other: ``n`` of them cost up to
        ``n * (n - 1) / 2``. An update made by typing or appending anchors each item
        on the previous one (cost about 0), or a few on existing items; one built
        to stall the server (thousands of head inserts, or of items from fresh client
        ids on one anchor) costs millions (issue 19, finding 1).
        """
        cost = 0
        for anchor, n in self.anchors.items():
            if n > 1:
                cost += n * (n - 1) // 2
            if not self._own(anchor):
                cost += n * sequence_size
        return cost

    def _own(self, anchor: tuple[object, ...]) -> bool:
        """Whether ``anchor`` is an item of this update (or a parent created in it)."""
        target: object = anchor
        if anchor[0] == "head":
            target = anchor[1]
            if isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], str):
                target = target[0]  # a map key's chain: its map
        if not (isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], int)):
            return False  # a root (it exists in every document), or a parent not named
        client, clock = target
        own = self.structs.get(client)
        return own is not None and own[0] <= clock < own[1]

    def skips_ahead_of(self, state: dict[int, int]) -> bool:
        """True when, for some client, the update starts past ``state``'s clock.

        yrs integrates such a gapped update at once (Yjs would keep it pending),
        with the state vector unchanged: the content then shows on this replica but
        never travels in a sync step 2, and edits inside it fire no events. Found by
        the convergence suite (docs/testing.md).
        """
        return any(first > state.get(client, 0) for client, (first, _) in self.structs.items())

    def missing_from(self, state: dict[int, int]) -> int | None:
        """A client id whose structs this update needs but ``state`` lacks, or None.

        Yjs (and yrs) park such an update as *pending*: it is not in the document,
        yet it would be stored and acknowledged, and it could be integrated later
        under the cover of someone else's update. The need is met by ``state`` or by
        the update's own structs (which start at or before ``state``'s clock).
        """
        for client, end in self.refs.items():
            have = state.get(client, 0)
            own = self.structs.get(client)
            if own is not None and own[0] <= have:
                have = max(have, own[1])
            if end > have:
                return client
        for client, end in self.deletes.items():
            have = state.get(client, 0)
            own = self.structs.get(client)
            if own is not None and own[0] <= have:
                have = max(have, own[1])
            if end > have:
                return client
        return None

    def new_clocks(self, state: dict[int, int]) -> dict[int, int]:
        """Per client id, how many clocks past ``state`` this update's structs reach."""
        return {
            client: end - state.get(client, 0)
            for client, (_, end) in self.structs.items()
            if end > state.get(client, 0)
        }

    def integrated_in(self, state: dict[int, int]) -> bool:
        """True when a document with this state vector holds all of the update.

        A struct or delete beyond the state vector was parked as pending.
        """
        for client, (_, end) in self.structs.items():
            if state.get(client, 0) < end:
                return False
        for client, end in self.deletes.items():
            if state.get(client, 0) < end:
                return False
        return True


def summarize_update(update: bytes) -> UpdateSummary:
    """Read ``update`` without applying it; raise MalformedMessage if it is not v1."""
    reader = Reader(update)
    summary = UpdateSummary()
    try:
        groups = reader.read_var_uint()
        for _ in range(groups):
            count = reader.read_var_uint()
            client = reader.read_var_uint()
            clock = reader.read_var_uint()
            start = clock
            for _ in range(count):
                clock += _read_struct(reader, summary)
                if clock > MAX_CLOCK:
                    raise MalformedMessage("the update's clocks go past 2**32 - 1")
            summary.count += count
            if count:
                first, end = summary.structs.get(client, (start, clock))
                summary.structs[client] = (min(first, start), max(end, clock))
        clients = reader.read_var_uint()
        for _ in range(clients):
            client = reader.read_var_uint()
            ranges = reader.read_var_uint()
            for _ in range(ranges):
                del_clock = reader.read_var_uint()
                del_len = reader.read_var_uint()
                end = del_clock + del_len
                if end > MAX_CLOCK:
                    raise MalformedMessage("the update deletes past clock 2**32 - 1")
                if end > summary.deletes.get(client, 0):
                    summary.deletes[client] = end
    except MalformedMessage:
        raise
    except (IndexError, ValueError, RecursionError) as exc:
        raise MalformedMessage("the update is not a valid Yjs update") from exc
    return summary


def _read_struct(reader: Reader, summary: UpdateSummary) -> int:
    info = reader.data[reader.pos] if reader.pos < len(reader.data) else _truncated()
    reader.pos += 1
    ref = info & 0x1F
    if ref in (_GC, _SKIP):
        length = reader.read_var_uint()
        if length == 0:  # no encoder writes one; a GC of length 0 after a struct panics yrs (tests/fuzz)
            raise MalformedMessage("the update holds a GC or skip of length 0")
        return length
    has_origin = info & 0x80
    has_right = info & 0x40
    anchor: tuple[object, ...] | None = None
    if has_origin:
        client, clock = reader.read_var_uint(), reader.read_var_uint()
        _ref(summary, client, clock)
        anchor = (client, clock)
    if has_right:
        _ref(summary, reader.read_var_uint(), reader.read_var_uint())
    if not (has_origin or has_right):
        root = None
        parent: object
        if reader.read_var_uint() == 1:
            root = reader.read_var_string()
            summary.roots.add(root)
            parent = root
        else:
            client, clock = reader.read_var_uint(), reader.read_var_uint()
            _ref(summary, client, clock)
            parent = (client, clock)
        keyed = bool(info & 0x20)
        if keyed:
            parent = (parent, reader.read_var_string())  # a map key: its own chain of values
        if root is not None:
            summary.root_items.add((root, keyed))
        anchor = ("head", parent) if not keyed else None
    elif not has_origin:
        anchor = ("head", None)  # a head insert before a known item: parent from its right origin
    if anchor is not None:
        summary.anchors[anchor] = summary.anchors.get(anchor, 0) + 1
    return _read_content(reader, ref, summary)


def _ref(summary: UpdateSummary, client: int, clock: int) -> None:
    refs = summary.refs
    if clock >= refs.get(client, 0):
        refs[client] = clock + 1


def _read_content(reader: Reader, ref: int, summary: UpdateSummary) -> int:
    if ref == _DELETED:
        return reader.read_var_uint()
    if ref == _JSON:
        # Yjs reads n strings, yrs n + 1 (tests/fuzz): one update, two struct layouts,
        # so the summary (roots, sub-documents) would not be what pycrdt applies. No
        # Yjs since v13 writes this content (ContentAny replaced it): refuse it.
        raise MalformedMessage("the update holds JSON content (ref 2), which yrs decodes unlike Yjs")
    if ref == _BINARY:
        reader.read_var_bytes()
        return 1
    if ref == _STRING:
        text = reader.read_var_string()
        return len(text.encode("utf-16-le")) // 2
    if ref == _EMBED:
        reader.read_var_string()
        return 1
    if ref == _FORMAT:
        reader.read_var_string()
        reader.read_var_string()
        return 1
    if ref == _TYPE:
        type_ref = reader.read_var_uint()
        if type_ref in (3, 5):  # XmlElement name, XmlHook name
            reader.read_var_string()
        return 1
    if ref == _ANY:
        n = reader.read_var_uint()
        for _ in range(n):
            _skip_any(reader, 0)
        return n
    if ref == _DOC:
        summary.subdocs = True
        reader.read_var_string()
        _skip_any(reader, 0)
        return 1
    raise MalformedMessage(f"the update holds an unknown content type {ref}")


def _skip_any(reader: Reader, depth: int) -> None:
    if depth > 64:
        raise MalformedMessage("the update nests values too deeply")
    if reader.pos >= len(reader.data):
        _truncated()
    tag = reader.data[reader.pos]
    reader.pos += 1
    if tag in (127, 126, 121, 120):  # undefined, null, false, true
        return
    if tag == 125:  # var int
        while True:
            if reader.pos >= len(reader.data):
                _truncated()
            byte = reader.data[reader.pos]
            reader.pos += 1
            if byte < 0x80:
                return
    if tag == 124:
        _advance(reader, 4)
    elif tag in (123, 122):
        _advance(reader, 8)
    elif tag == 119:
        reader.read_var_string()
    elif tag == 118:
        for _ in range(reader.read_var_uint()):
            reader.read_var_string()
            _skip_any(reader, depth + 1)
    elif tag == 117:
        for _ in range(reader.read_var_uint()):
            _skip_any(reader, depth + 1)
    elif tag == 116:
        reader.read_var_bytes()
    else:
        raise MalformedMessage(f"the update holds an unknown value tag {tag}")


def _advance(reader: Reader, n: int) -> None:
    if reader.pos + n > len(reader.data):
        _truncated()
    reader.pos += n


def _truncated() -> int:
    raise MalformedMessage("truncated update")
