"""A structure-aware, seeded generator of the frames a y-websocket server parses.

Every kind of frame the server reads (docs/protocol.md), valid and broken in the
ways that reach different code: sync step 1 (state vectors), sync step 2 and sync
update (real Yjs updates made with pycrdt, then mutated, and hand-built updates
with lying counts, huge clocks and lengths, unknown content refs, deep ``Any``
values), awareness (JSON states of every shape, deep nesting, huge counts and
clocks, 1 MiB states), query-awareness, the server-to-client ``saved`` message,
the client-to-server token refresh (101: a token string, broken or not), unknown types, empty frames, text frames, and frames cut at every position.

Same seed, same frames, in any process: the corpus is built from pycrdt documents
with fixed client ids and content whose encoding does not depend on hash-map order
(one client per document, no multi-key dicts, no sub-documents: those are built
by hand here).

``FrameGenerator.frame()`` draws any kind; ``survivable()`` draws only frames a
correct server accepts (still randomised inside the valid space), so an attack
connection can carry many frames before the one that gets it closed.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = (
    "Frame",
    "Corpus",
    "FrameGenerator",
    "KINDS",
    "SURVIVABLE_KINDS",
    "uv",
    "vbytes",
    "vstr",
    "deep_json",
    "every_truncation",
    "state_vector",
    "awareness_payload",
    "awareness_frame",
    "sync_frame",
    "item_struct",
    "update_bytes",
    "any_value",
    "KNOWN_BAD",
)

#: lib0 never encodes more than JavaScript's Number.MAX_SAFE_INTEGER
MAX_SAFE = 2**53 - 1
#: numbers that sit on the edges of u8/u32/u53/u64 decoders
HUGE = (2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70)
ROOTS = ("meta", "participants", "messages", "selections", "values", "ballots", "votes", "matrix",
         "progress", "drafts", "mission", "vision", "fuzz", "")  # fmt: skip


# -- lib0 encoding, without the encoder's own limits (attacks need 2**70 too) ------------------
def uv(n: int) -> bytes:
    """A var-uint of any size (lib0 writes at most 2**53 - 1; this writes anything)."""
    out = bytearray()
    while n > 127:
        out.append(128 | (n & 127))
        n >>= 7
    out.append(n)
    return bytes(out)


def vbytes(data: bytes) -> bytes:
    return uv(len(data)) + data


def vstr(text: str) -> bytes:
    return vbytes(text.encode("utf-8", "surrogatepass"))


def sync_frame(sub: int, payload: bytes) -> bytes:
    """A sync message: 0 step 1, 1 step 2, 2 update."""
    return b"\x00" + uv(sub) + vbytes(payload)


def awareness_frame(payload: bytes) -> bytes:
    return b"\x01" + vbytes(payload)


def state_vector(entries: list[tuple[int, int]], count: int | None = None) -> bytes:
    """A state vector; ``count`` may lie about the number of entries."""
    n = len(entries) if count is None else count
    return uv(n) + b"".join(uv(c) + uv(k) for c, k in entries)


def awareness_payload(entries: list[tuple[int, int, bytes]], count: int | None = None) -> bytes:
    """An awareness update of (client, clock, raw state bytes); ``count`` may lie."""
    n = len(entries) if count is None else count
    return uv(n) + b"".join(uv(c) + uv(k) + vbytes(s) for c, k, s in entries)


def deep_json(depth: int, kind: str = "object") -> str:
    """A JSON object nested ``depth`` levels (``kind``: object, array or mixed)."""
    if kind == "array":
        return '{"a":' + "[" * depth + "]" * depth + "}"
    if kind == "mixed":
        return '{"a":' + '[{"b":' * (depth // 2) + "1" + "}]" * (depth // 2) + "}"
    return '{"a":' * depth + "1" + "}" * depth


def any_value(rng: random.Random, depth: int = 0, max_depth: int = 3) -> bytes:
    """A random lib0 ``Any`` value (tags 116..127), at most ``max_depth`` deep."""
    choice = rng.randrange(13 if depth < max_depth else 11)
    if choice == 0:
        return b"\x7f"  # undefined
    if choice == 1:
        return b"\x7e"  # null
    if choice == 2:  # var int: sign bit 0x40 in the first byte
        n = rng.choice((0, 1, 63, 64, 2**31, MAX_SAFE))
        first = (n & 0x3F) | (0x40 if rng.random() < 0.3 else 0)
        n >>= 6
        out = bytearray([first | (0x80 if n else 0)])
        while n:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
        return b"\x7d" + bytes(out)
    if choice == 3:
        return b"\x7c" + rng.randbytes(4)  # float32
    if choice == 4:
        return b"\x7b" + rng.randbytes(8)  # float64
    if choice == 5:
        return b"\x7a" + rng.randbytes(8)  # bigint64
    if choice == 6:
        return b"\x79"  # false
    if choice == 7:
        return b"\x78"  # true
    if choice in (8, 9):
        return b"\x77" + vstr(_text(rng))
    if choice == 10:
        return b"\x74" + vbytes(rng.randbytes(rng.randrange(8)))
    n = rng.randrange(4)
    if choice == 11:  # object
        keys = [f"k{i}" for i in range(n)]
        return b"\x76" + uv(n) + b"".join(vstr(k) + any_value(rng, depth + 1, max_depth) for k in keys)
    return b"\x75" + uv(n) + b"".join(any_value(rng, depth + 1, max_depth) for _ in range(n))


def deep_any(depth: int, tag: int = 0x75) -> bytes:
    """An ``Any`` array (0x75) or object (0x76) nested ``depth`` deep."""
    if tag == 0x76:
        return (b"\x76\x01" + vstr("k")) * depth + b"\x7e"
    return b"\x75\x01" * depth + b"\x7e"


def item_struct(
    ref: int,
    content: bytes,
    *,
    root: str | None = "messages",
    parent_id: tuple[int, int] | None = None,
    origin: tuple[int, int] | None = None,
    right: tuple[int, int] | None = None,
    parent_sub: str | None = None,
) -> bytes:
    """One Item struct of a v1 update (yjs Item.write): info, origins or parent, content."""
    info = ref & 0x1F
    if origin is not None:
        info |= 0x80
    if right is not None:
        info |= 0x40
    if parent_sub is not None:
        info |= 0x20
    out = bytearray([info])
    if origin is not None:
        out += uv(origin[0]) + uv(origin[1])
    if right is not None:
        out += uv(right[0]) + uv(right[1])
    if origin is None and right is None:
        if parent_id is not None:
            out += uv(0) + uv(parent_id[0]) + uv(parent_id[1])
        else:
            out += uv(1) + vstr(root or "")
        if parent_sub is not None:
            out += vstr(parent_sub)
    return bytes(out) + content


def update_bytes(
    groups: list[tuple[int, int, list[bytes]]],
    deletes: list[tuple[int, list[tuple[int, int]]]] = (),  # type: ignore[assignment]
    *,
    group_count: int | None = None,
    struct_counts: list[int] | None = None,
) -> bytes:
    """A v1 update: groups of (client, first clock, structs), then a delete set.

    ``group_count`` and ``struct_counts`` may lie about how many follow.
    """
    out = bytearray(uv(len(groups) if group_count is None else group_count))
    for i, (client, clock, structs) in enumerate(groups):
        n = len(structs) if struct_counts is None else struct_counts[i]
        out += uv(n) + uv(client) + uv(clock) + b"".join(structs)
    out += uv(len(deletes))
    for client, ranges in deletes:
        out += uv(client) + uv(len(ranges)) + b"".join(uv(c) + uv(n) for c, n in ranges)
    return bytes(out)


def every_truncation(frame: bytes) -> Iterator[bytes]:
    """``frame`` cut after each of its first ``len - 1`` bytes (the empty frame included)."""
    for end in range(len(frame)):
        yield frame[:end]


_ALPHABET = string.ascii_letters + string.digits + " _-é😀\u0000\u2028\"\\"


def _text(rng: random.Random, n: int | None = None) -> str:
    n = rng.randrange(12) if n is None else n
    return "".join(rng.choice(_ALPHABET) for _ in range(n))


# -- the corpus of real updates ---------------------------------------------------------------
class Corpus:
    """Real Yjs updates made with pycrdt from a seed, plus their documents' state vectors.

    ``full`` holds whole-document updates of single-client documents: each applies on
    any server document (no dependency on another client). ``steps`` holds the
    incremental updates of those documents, in order (valid after their prefix).
    """

    def __init__(self, seed: int, docs: int = 12, ops: int = 12) -> None:
        from pycrdt import Array, Doc, Map, Text

        rng = random.Random(seed)
        self.full: list[bytes] = []
        self.steps: list[list[bytes]] = []
        self.state_vectors: list[bytes] = [b"\x00"]
        self.client_ids: list[int] = []
        for _ in range(docs):
            client = rng.randrange(1, 2**32)
            self.client_ids.append(client)
            doc: Doc = Doc(client_id=client)
            steps: list[bytes] = []
            sub = doc.observe(lambda event, steps=steps: steps.append(event.update))
            for _ in range(ops):
                root = rng.choice(ROOTS[:-1])
                op = rng.randrange(8)
                if op == 0:
                    doc.get(root + "-t", type=Text).insert(0, _text(rng) or "x")
                elif op == 1:
                    text = doc.get(root + "-t", type=Text)
                    text.insert(len(text), _text(rng, 6) or "y")
                    if len(text) > 2:
                        text.format(0, 2, {"bold": rng.random() < 0.5})
                elif op == 2:
                    text = doc.get(root + "-t", type=Text)
                    if len(text) > 1:
                        del text[0 : rng.randrange(1, len(text))]
                    else:
                        text.insert(0, "z")
                elif op == 3:
                    doc.get(root + "-m", type=Map)[_text(rng, 3)] = _plain(rng)
                elif op == 4:
                    doc.get(root + "-a", type=Array).append(_plain(rng))
                elif op == 5:
                    arr = doc.get(root + "-a", type=Array)
                    arr.append(Map({"k": _plain(rng)}))
                    if len(arr) > 2:
                        del arr[0]
                elif op == 6:
                    doc.get(root + "-m", type=Map)[_text(rng, 2)] = Array([_plain(rng), _plain(rng)])
                else:
                    doc.get(root + "-t", type=Text).insert_embed(0, {"img": _text(rng, 4)})
            doc.unobserve(sub)
            self.steps.append(steps)
            self.full.append(doc.get_update())
            self.state_vectors.append(doc.get_state())
        # hand-built but well-formed updates of every content ref (parents are roots)
        # (ref 2, JSON, is refused: yrs reads it unlike Yjs; see update.json_content)
        self.crafted: list[bytes] = [self._crafted(rng, ref) for ref in (1, 3, 4, 5, 6, 7, 8, 9) for _ in range(3)]

    @staticmethod
    def _crafted(rng: random.Random, ref: int) -> bytes:
        client = rng.randrange(2**32, 2**40)
        return update_bytes([(client, 0, [item_struct(ref, _content(rng, ref), root=rng.choice(ROOTS))])])


def _plain(rng: random.Random, depth: int = 0) -> object:
    """A JSON-like value whose pycrdt encoding is deterministic (no multi-key dicts)."""
    choice = rng.randrange(8 if depth < 2 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.randrange(-(2**40), 2**40)
    if choice == 3:
        return rng.random() * 1e6
    if choice in (4, 5):
        return _text(rng)
    if choice == 6:
        return [_plain(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {_text(rng, 3): _plain(rng, depth + 1)}


def _content(rng: random.Random, ref: int) -> bytes:
    """Well-formed content of ``ref`` (1 deleted .. 9 doc)."""
    if ref == 1:
        return uv(rng.randrange(1, 5))
    if ref == 2:
        n = rng.randrange(1, 3)
        return uv(n) + b"".join(vstr(rng.choice(('"s"', "1", "null", "undefined", "[1]"))) for _ in range(n))
    if ref == 3:
        return vbytes(rng.randbytes(rng.randrange(6)))
    if ref == 4:
        return vstr(_text(rng) or "s")
    if ref == 5:
        return vstr(json.dumps({"e": _text(rng, 3)}))
    if ref == 6:
        return vstr("bold") + vstr(rng.choice(("true", "null", '"x"')))
    if ref == 7:
        type_ref = rng.randrange(7)
        return uv(type_ref) + (vstr("p") if type_ref in (3, 5) else b"")
    if ref == 8:
        n = rng.randrange(1, 4)
        return uv(n) + b"".join(any_value(rng) for _ in range(n))
    if ref == 9:
        return vstr(f"guid-{rng.randrange(10**6)}") + b"\x76\x00"
    return b""


# -- frames -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Frame:
    """One frame to send: ``data`` is bytes (binary frame) or str (a text frame)."""

    kind: str
    data: bytes | str

    @property
    def size(self) -> int:
        return len(self.data)


#: frames of these kinds are valid: a correct server accepts them (auth off)
SURVIVABLE_KINDS: dict[str, int] = {
    "sv.valid": 6,
    "sv.random": 6,
    "update.valid": 4,
    "update.step2_valid": 2,
    "update.crafted_valid": 2,
    "update.empty": 2,
    "awareness.valid": 10,
    "awareness.null": 2,
    "awareness.echo": 2,
    "query": 3,
}

#: every kind, with its weight in :meth:`FrameGenerator.frame`
KINDS: dict[str, int] = {
    **SURVIVABLE_KINDS,
    "sv.truncated": 3,
    "sv.huge_varint": 3,
    "sv.huge_count": 3,
    "sv.trailing": 2,
    "sv.bytes": 2,
    "update.bitflip": 6,
    "update.truncated": 4,
    "update.splice": 3,
    "update.varint_huge": 5,
    "update.count_lie": 4,
    "update.huge_clock": 3,
    "update.deleted_huge": 3,
    "update.gc_huge": 2,
    "update.unknown_ref": 2,
    "update.unknown_type_ref": 2,
    "update.any_deep": 2,
    "update.any_random": 3,
    "update.string_claim": 3,
    "update.bad_utf8": 2,
    "update.parent_id": 2,
    "update.delete_set": 3,
    "update.gapped": 2,
    "update.bytes": 2,
    "update.json_content": 1,
    "awareness.invalid_json": 3,
    "awareness.deep": 1,
    "awareness.many_clients": 2,
    "awareness.huge_clock": 2,
    "awareness.big_state": 1,
    "awareness.non_object": 2,
    "awareness.bad_utf8": 1,
    "awareness.nonstandard_json": 2,
    "awareness.mutated": 3,
    "query.trailing": 1,
    "saved": 2,
    "token": 2,
    "unknown.type": 2,
    "unknown.sync_sub": 2,
    "empty": 1,
    "text": 2,
    "truncated": 5,
    "overlong": 1,
    "random": 2,
}

#: the frames of the bugs issue 14 reports, by name (hex in docs/fuzzing.md)
KNOWN_BAD: dict[str, bytes] = {
    # sync step 1 whose state vector (05: five entries, none there) pycrdt cannot decode
    "sync_step1_undecodable_sv": bytes.fromhex("00000105"),
    # one awareness entry whose state is {"a":{"a":...1...}} nested 5,000 deep
    "awareness_nested_5000": awareness_frame(
        awareness_payload([(1, 1, deep_json(5000).encode())])
    ),
}


class FrameGenerator:
    """Frames from a seed. ``client_pool`` awareness/update client ids keep memory bounded."""

    def __init__(
        self,
        seed: int,
        corpus: Corpus | None = None,
        *,
        big_states: bool = True,
        clients: int = 8,
        survivable_updates: bool = True,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.corpus = corpus if corpus is not None else Corpus(seed)
        self.big_states = big_states
        self._clock = 0
        # awareness client ids: a few, as a real provider has (the server caps them per connection)
        self._pool = [self.rng.randrange(1, 2**32) for _ in range(clients)]
        self._kinds = list(KINDS)
        self._weights = [KINDS[k] for k in self._kinds]
        # with authentication on, a participant's updates to the corpus' roots are refused
        # (4403): then only the frames a participant may send count as survivable
        self._survivable = [k for k in SURVIVABLE_KINDS if survivable_updates or not k.startswith("update.") or k == "update.empty"]
        self._survivable_weights = [SURVIVABLE_KINDS[k] for k in self._survivable]
        self._any_survivable = list(SURVIVABLE_KINDS)
        self._makers: dict[str, Callable[[], bytes | str]] = {
            kind: getattr(self, "_" + kind.replace(".", "_")) for kind in KINDS
        }

    # -- drawing ----------------------------------------------------------------------------
    def frame(self) -> Frame:
        kind = self.rng.choices(self._kinds, self._weights)[0]
        return self.make(kind)

    def survivable(self) -> Frame:
        kind = self.rng.choices(self._survivable, self._survivable_weights)[0]
        return self.make(kind)

    def make(self, kind: str) -> Frame:
        return Frame(kind, self._makers[kind]())

    def frames(self, n: int) -> Iterator[Frame]:
        for _ in range(n):
            yield self.frame()

    # -- helpers ----------------------------------------------------------------------------
    def _client(self) -> int:
        return self.rng.choice(self._pool)

    def _next_clock(self) -> int:
        self._clock += 1
        return self._clock

    def _any_valid_frame(self) -> bytes:
        kind = self.rng.choice(self._any_survivable)
        data = self._makers[kind]()
        assert isinstance(data, bytes)
        return data

    def _an_update(self) -> bytes:
        c = self.corpus
        pick = self.rng.randrange(3)
        if pick == 0:
            return self.rng.choice(c.full)
        if pick == 1:
            return self.rng.choice(c.crafted)
        steps = self.rng.choice(c.steps)
        return self.rng.choice(steps) if steps else self.rng.choice(c.full)

    def _flip(self, data: bytes) -> bytes:
        if not data:
            return data
        buf = bytearray(data)
        for _ in range(self.rng.randrange(1, 5)):
            i = self.rng.randrange(len(buf))
            if self.rng.random() < 0.5:
                buf[i] ^= 1 << self.rng.randrange(8)
            else:
                buf[i] = self.rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, self.rng.randrange(256)))
        return bytes(buf)

    def _varint_spans(self, data: bytes) -> list[tuple[int, int]]:
        """Byte spans that read as var-uints if a reader were there (every start)."""
        spans = []
        i = 0
        while i < len(data):
            j = i
            while j < len(data) and data[j] & 0x80:
                j += 1
            spans.append((i, min(j + 1, len(data))))
            i = j + 1
        return spans

    # -- sync step 1 ------------------------------------------------------------------------
    def _sv_valid(self) -> bytes:
        return sync_frame(0, self.rng.choice(self.corpus.state_vectors))

    def _sv_random(self) -> bytes:
        n = self.rng.randrange(6)
        entries = [(self.rng.randrange(2**53), self.rng.choice((0, 1, 7, 2**20, 2**32, MAX_SAFE))) for _ in range(n)]
        return sync_frame(0, state_vector(entries))

    def _sv_truncated(self) -> bytes:
        sv = state_vector([(self.rng.randrange(2**53), self.rng.randrange(2**32)) for _ in range(self.rng.randrange(1, 4))])
        return sync_frame(0, sv[: self.rng.randrange(len(sv))])

    def _sv_huge_varint(self) -> bytes:
        big = self.rng.choice(HUGE)
        where = self.rng.randrange(3)
        entries = [(big if where == 0 else 1, big if where == 1 else 1)]
        if where == 2:  # an endless continuation: 12 bytes of 0x80+
            return sync_frame(0, b"\x01" + b"\xff" * self.rng.randrange(8, 16) + b"\x01\x01")
        return sync_frame(0, state_vector(entries))

    def _sv_huge_count(self) -> bytes:
        count = self.rng.choice((2**16, 2**28, 2**32 - 1, MAX_SAFE, *HUGE))
        entries = [(self.rng.randrange(100), 1) for _ in range(self.rng.randrange(3))]
        return sync_frame(0, state_vector(entries, count=count))

    def _sv_trailing(self) -> bytes:
        return sync_frame(0, self.rng.choice(self.corpus.state_vectors) + self.rng.randbytes(self.rng.randrange(1, 4)))

    def _sv_bytes(self) -> bytes:
        return sync_frame(0, self.rng.randbytes(self.rng.randrange(0, 12)))

    # -- sync step 2 / update ---------------------------------------------------------------
    def _update_valid(self) -> bytes:
        return sync_frame(2, self.rng.choice(self.corpus.full))

    def _update_step2_valid(self) -> bytes:
        return sync_frame(1, self.rng.choice(self.corpus.full))

    def _update_crafted_valid(self) -> bytes:
        return sync_frame(2, self.rng.choice(self.corpus.crafted))

    def _update_empty(self) -> bytes:
        return sync_frame(self.rng.choice((1, 2)), b"\x00\x00")

    def _wrap(self, update: bytes) -> bytes:
        return sync_frame(self.rng.choice((1, 2, 2)), update)

    def _update_bitflip(self) -> bytes:
        return self._wrap(self._flip(self._an_update()))

    def _update_truncated(self) -> bytes:
        u = self._an_update()
        return self._wrap(u[: self.rng.randrange(len(u))])

    def _update_splice(self) -> bytes:
        a, b = self._an_update(), self._an_update()
        i, j = self.rng.randrange(len(a) + 1), self.rng.randrange(len(b) + 1)
        return self._wrap(a[:i] + b[j:])

    def _update_varint_huge(self) -> bytes:
        u = self._an_update()
        start, end = self.rng.choice(self._varint_spans(u))
        return self._wrap(u[:start] + uv(self.rng.choice(HUGE)) + u[end:])

    def _update_count_lie(self) -> bytes:
        """A real update whose group count or first struct count lies."""
        u = self._an_update()
        groups_end = self._varint_spans(u)[0][1]
        delta = self.rng.choice((1, 2, 100, 2**20, 2**32))
        if self.rng.random() < 0.5:  # the group count
            from vmv_sync.protocol.varint import Reader

            n = Reader(u).read_var_uint()
            return self._wrap(uv(max(0, n + self.rng.choice((-1, delta)))) + u[groups_end:])
        spans = self._varint_spans(u)
        if len(spans) < 2:
            return self._wrap(u)
        start, end = spans[1]
        return self._wrap(u[:start] + uv(self.rng.choice((0, delta))) + u[end:])

    def _fresh_client(self) -> int:
        return self.rng.randrange(2**32, 2**40)

    def _update_huge_clock(self) -> bytes:
        clock = self.rng.choice(HUGE)
        struct = item_struct(4, vstr("x"))
        return self._wrap(update_bytes([(self._fresh_client(), clock, [struct])]))

    def _update_deleted_huge(self) -> bytes:
        """A deleted-content item (or delete range) of a huge length, at clock 0."""
        length = self.rng.choice(HUGE[:5] + (2**30, 2**24))
        struct = item_struct(1, uv(length), root=self.rng.choice(ROOTS))
        client = self._fresh_client()
        if self.rng.random() < 0.3:
            return self._wrap(update_bytes([(client, 0, [struct])], [(client, [(0, length)])]))
        return self._wrap(update_bytes([(client, 0, [struct])]))

    def _update_gc_huge(self) -> bytes:
        length = self.rng.choice(HUGE[:5])
        ref = self.rng.choice((0, 10))  # GC or Skip
        return self._wrap(update_bytes([(self._fresh_client(), 0, [bytes([ref]) + uv(length)])]))

    def _update_unknown_ref(self) -> bytes:
        ref = self.rng.randrange(11, 32)
        return self._wrap(update_bytes([(self._fresh_client(), 0, [item_struct(ref, self.rng.randbytes(4))])]))

    def _update_unknown_type_ref(self) -> bytes:
        type_ref = self.rng.choice((7, 8, 15, 127, 2**20))
        return self._wrap(update_bytes([(self._fresh_client(), 0, [item_struct(7, uv(type_ref) + vstr("p"))])]))

    def _update_any_deep(self) -> bytes:
        depth = self.rng.choice((60, 64, 65, 66, 100, 1000, 5000))
        tag = self.rng.choice((0x75, 0x76))
        return self._wrap(update_bytes([(self._fresh_client(), 0, [item_struct(8, uv(1) + deep_any(depth, tag))])]))

    def _update_any_random(self) -> bytes:
        n = self.rng.randrange(1, 5)
        content = uv(n) + b"".join(any_value(self.rng, max_depth=4) for _ in range(n))
        if self.rng.random() < 0.3:  # doc content: guid + any options
            struct = item_struct(9, vstr("g") + any_value(self.rng, max_depth=2), root="fuzz")
        else:
            struct = item_struct(8, content, root=self.rng.choice(ROOTS), parent_sub=self.rng.choice((None, "k")))
        return self._wrap(update_bytes([(self._fresh_client(), 0, [struct])]))

    def _update_string_claim(self) -> bytes:
        """A string (content, root name, key or Any) whose length says more than is there."""
        claim = self.rng.choice((2**20, 2**31 - 1, 2**32 - 1, MAX_SAFE))
        short = uv(claim) + b"abc"
        where = self.rng.randrange(4)
        client = self._fresh_client()
        if where == 0:
            struct = item_struct(4, short)
        elif where == 1:
            struct = bytes([0x04]) + uv(1) + short
        elif where == 2:
            struct = item_struct(8, uv(1) + b"\x77" + short)
        else:
            struct = item_struct(3, short)
        return self._wrap(update_bytes([(client, 0, [struct])]))

    def _update_bad_utf8(self) -> bytes:
        bad = self.rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x28\xa1", b"\xf8\x88\x80\x80\x80"))
        where = self.rng.randrange(3)
        if where == 0:
            struct = item_struct(4, vbytes(b"a" + bad))
        elif where == 1:
            struct = bytes([0x04]) + uv(1) + vbytes(bad) + vstr("x")
        else:
            struct = item_struct(8, uv(1) + b"\x77" + vbytes(bad))
        return self._wrap(update_bytes([(self._fresh_client(), 0, [struct])]))

    def _update_parent_id(self) -> bytes:
        """An item whose parent is an item id (maybe unknown, maybe huge), or with origins."""
        c = self.rng.choice(self.corpus.client_ids + [self._fresh_client()])
        target = (c, self.rng.choice((0, 1, 5, 2**32, MAX_SAFE)))
        pick = self.rng.randrange(3)
        if pick == 0:
            struct = item_struct(4, vstr("p"), parent_id=target)
        elif pick == 1:
            struct = item_struct(4, vstr("o"), origin=target)
        else:
            struct = item_struct(4, vstr("r"), right=target, parent_sub=None)
        return self._wrap(update_bytes([(self._fresh_client(), 0, [struct])]))

    def _update_delete_set(self) -> bytes:
        """No structs, only delete ranges (of unknown clients, huge clocks and lengths)."""
        ranges = [
            (self.rng.choice((0, 1, 2**32, MAX_SAFE)), self.rng.choice((0, 1, 2**31, MAX_SAFE)))
            for _ in range(self.rng.randrange(1, 4))
        ]
        client = self.rng.choice(self.corpus.client_ids + [self._fresh_client(), 0])
        count = None if self.rng.random() < 0.7 else self.rng.choice((2**32, 10**6))
        deletes = update_bytes([], [(client, ranges)])
        if count is not None:
            deletes = b"\x00\x01" + uv(client) + uv(count) + b"\x00\x01"
        return self._wrap(deletes)

    def _update_gapped(self) -> bytes:
        """A later incremental update without its prefix (skips ahead, or pending)."""
        steps = [s for s in self.corpus.steps if len(s) > 1]
        if not steps:
            return self._update_valid()
        chain = self.rng.choice(steps)
        return self._wrap(chain[self.rng.randrange(1, len(chain))])

    def _update_json_content(self) -> bytes:
        """ContentJSON (ref 2): Yjs reads n strings, yrs n + 1."""
        n = self.rng.randrange(0, 3)
        content = uv(n) + b"".join(vstr("1") for _ in range(n + self.rng.randrange(2)))
        return self._wrap(update_bytes([(self._fresh_client(), 0, [item_struct(2, content)])]))

    def _update_bytes(self) -> bytes:
        return self._wrap(self.rng.randbytes(self.rng.randrange(1, 40)))

    # -- awareness --------------------------------------------------------------------------
    def _state(self) -> str:
        """A valid awareness state: a JSON object of the contract's shape, or random."""
        if self.rng.random() < 0.5:
            return json.dumps(
                {
                    "stage": self.rng.choice(("values-select", "vision", _text(self.rng))),
                    "typing": self.rng.random() < 0.5,
                    "cursor": {"x": self.rng.random(), "y": self.rng.random()} if self.rng.random() < 0.5 else None,
                    "n": self.rng.randrange(-(2**60), 2**60),
                }
            )
        return json.dumps(_plain_object(self.rng))

    def _awareness_valid(self) -> bytes:
        n = self.rng.choice((1, 1, 1, 2, 3))
        return awareness_frame(
            awareness_payload([(self._client(), self._next_clock(), self._state().encode()) for _ in range(n)])
        )

    def _awareness_null(self) -> bytes:
        raw = self.rng.choice((b"null", b""))
        return awareness_frame(awareness_payload([(self._client(), self._next_clock(), raw)]))

    def _awareness_echo(self) -> bytes:
        """An old clock for a known client: a stock provider's echo, ignored."""
        return awareness_frame(awareness_payload([(self._client(), self.rng.randrange(0, 3), b"{}")]))

    def _awareness_invalid_json(self) -> bytes:
        raw = self.rng.choice((b"{bad}", b"{", b'{"a":}', b"{'a':1}", b'{"a":1,}', b"[1", b"\x00", b'{"a":1}x', b"nul"))
        return awareness_frame(awareness_payload([(self._client(), self._next_clock(), raw)]))

    def _awareness_deep(self) -> bytes:
        depth = self.rng.choice((500, 1000, 5000, 20000))
        text = deep_json(depth, self.rng.choice(("object", "array", "mixed")))
        return awareness_frame(awareness_payload([(self._client(), self._next_clock(), text.encode())]))

    def _awareness_many_clients(self) -> bytes:
        pick = self.rng.randrange(3)
        if pick == 0:  # a huge claim, few entries
            count = self.rng.choice((10_001, 2**20, 2**32 - 1, MAX_SAFE, 2**64))
            return awareness_frame(awareness_payload([(self._client(), 1, b"{}")], count=count))
        n = 10_000 if pick == 1 else 10_001  # the most a frame may carry, and one more
        base = self.rng.randrange(2**40)
        return awareness_frame(awareness_payload([(base + i, 1, b"null") for i in range(n)]))

    def _awareness_huge_clock(self) -> bytes:
        clock = self.rng.choice(HUGE)
        client = self.rng.choice((self._client(), self.rng.choice(HUGE)))
        return awareness_frame(awareness_payload([(client, clock, b"{}")]))

    def _awareness_big_state(self) -> bytes:
        size = self.rng.choice((1024 * 1024 - 64, 1024 * 1024 + 16)) if self.big_states else 60_000
        state = '{"pad":"' + "x" * size + '"}'
        return awareness_frame(awareness_payload([(self._client(), self._next_clock(), state.encode())]))

    def _awareness_non_object(self) -> bytes:
        raw = self.rng.choice((b"1", b"[1,2]", b'"s"', b"true", b"false", b"1.5e300", b"[]", b"-0"))
        return awareness_frame(awareness_payload([(self._client(), self._next_clock(), raw)]))

    def _awareness_bad_utf8(self) -> bytes:
        raw = b'{"a":"' + self.rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80")) + b'"}'
        return awareness_frame(awareness_payload([(self._client(), self._next_clock(), raw)]))

    def _awareness_nonstandard_json(self) -> bytes:
        """What Python's json accepts and JSON.parse refuses, or the reverse: edge cases."""
        raw = self.rng.choice(
            (
                b'{"a":NaN}',
                b'{"a":Infinity}',
                b'{"a":-Infinity}',
                b'{"a":1' + b"0" * 5000 + b"}",
                b'{"a":"\\ud800"}',
                b'{"a":1,"a":2}',
                b' \t\n{"a":1}\n',
                b'{"a":1e99999}',
            )
        )
        return awareness_frame(awareness_payload([(self._client(), self._next_clock(), raw)]))

    def _awareness_mutated(self) -> bytes:
        frame = self._awareness_valid()
        return self._flip(frame) if self.rng.random() < 0.6 else frame[: self.rng.randrange(1, len(frame))]

    # -- the rest ---------------------------------------------------------------------------
    def _query(self) -> bytes:
        return b"\x03"

    def _query_trailing(self) -> bytes:
        return b"\x03" + self.rng.randbytes(self.rng.randrange(1, 4))

    def _saved(self) -> bytes:
        return b"\x64" + uv(self.rng.choice((0, 1, 2**31, MAX_SAFE)))

    def _token(self) -> bytes:
        """A token refresh (101): a JWT-shaped string, any text, bytes that are not UTF-8, or no payload."""
        pick = self.rng.randrange(5)
        if pick == 0:
            return b"\x65" + vstr(".".join(_text(self.rng, 40) for _ in range(3)))
        if pick == 1:
            return b"\x65" + vstr(_text(self.rng, 200))
        if pick == 2:
            return b"\x65" + vbytes(self.rng.randbytes(self.rng.randrange(1, 40)))
        if pick == 3:
            return b"\x65" + uv(self.rng.choice((1, 2**20, *HUGE)))  # a length with nothing behind it
        return b"\x65"

    def _unknown_type(self) -> bytes:
        kind = self.rng.choice((2, 4, 5, 99, 102, 127, 128, 2**14, 2**32))
        return uv(kind) + self.rng.randbytes(self.rng.randrange(4))

    def _unknown_sync_sub(self) -> bytes:
        return b"\x00" + uv(self.rng.choice((3, 4, 127, 128, 2**32))) + vbytes(b"\x00\x00")

    def _empty(self) -> bytes:
        return b""

    def _text(self) -> str:
        pick = self.rng.randrange(4)
        if pick == 0:
            return ""
        if pick == 1:
            return self._any_valid_frame().decode("latin-1")
        if pick == 2:
            return json.dumps({"type": "sync", "data": _text(self.rng)})
        return _text(self.rng, 40)

    def _truncated(self) -> bytes:
        frame = self._any_valid_frame()
        return frame[: self.rng.randrange(len(frame))]

    def _overlong(self) -> bytes:
        """Over-long varints for the message type (0 as 80 00) and sub type."""
        return self.rng.choice((b"\x80\x00\x00\x02\x02\x00\x00", b"\x00\x80\x00\x01\x00", b"\x81\x00\x01\x00", b"\x80\x80\x80\x00\x03"))

    def _random(self) -> bytes:
        return self.rng.randbytes(self.rng.randrange(1, 64))


def _plain_object(rng: random.Random) -> dict[str, object]:
    out: dict[str, object] = {}
    for i in range(rng.randrange(4)):
        out[f"{_text(rng, 3)}{i}"] = _plain(rng)
    return out
