"""Fuzzing the pure parsers: seeded generator frames, every truncation, atheris, regressions.

The invariants are :mod:`tests.fuzz.oracle`'s. Deep runs: docs/fuzzing.md.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from vmv_sync.errors import MalformedMessage
from vmv_sync.protocol import (
    decode_awareness_update,
    decode_state_vector,
    encode_awareness,
    encode_awareness_update,
    encode_sync_step1,
    encode_sync_update,
    parse_message,
)
from vmv_sync.protocol.update import summarize_update

from .frames import (
    HUGE,
    KINDS,
    KNOWN_BAD,
    FrameGenerator,
    awareness_frame,
    awareness_payload,
    deep_json,
    every_truncation,
    item_struct,
    state_vector,
    sync_frame,
    update_bytes,
    uv,
    vstr,
)
from .oracle import check_frame

ROOT = Path(__file__).resolve().parents[2]
#: frames per CI run of the generator loop; VMV_FUZZ_FRAMES raises it
CI_FRAMES = int(os.environ.get("VMV_FUZZ_PARSER_FRAMES", "12000"))
SEED = int(os.environ.get("VMV_FUZZ_SEED", "20141"))


def test_generator_frames_keep_the_parser_invariants() -> None:
    gen = FrameGenerator(SEED)
    results: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    slowest = 0.0
    for frame in gen.frames(CI_FRAMES):
        outcome = check_frame(frame.data)  # raises Violation on a broken invariant
        results[outcome.result] += 1
        kinds[frame.kind] += 1
        slowest = max(slowest, outcome.seconds)
    elapsed = time.perf_counter() - started
    print(f"\nparser fuzz: {CI_FRAMES} frames in {elapsed:.1f} s, slowest {slowest * 1000:.0f} ms; {dict(results)}")
    assert set(kinds) == set(KINDS), f"kinds never drawn: {set(KINDS) - set(kinds)}"
    assert results["accepted"] > CI_FRAMES // 10 and results["MalformedMessage"] > CI_FRAMES // 10


def test_every_kind_has_frames_the_parsers_judge() -> None:
    gen = FrameGenerator(SEED + 1)
    for kind in KINDS:
        for _ in range(30):
            check_frame(gen.make(kind).data)


def test_every_truncation_of_every_kind_is_refused_cleanly() -> None:
    gen = FrameGenerator(SEED + 2, big_states=False)
    cut = 0
    for kind in KINDS:
        frame = gen.make(kind).data
        if isinstance(frame, str) or len(frame) > 20_000:
            continue
        for prefix in every_truncation(frame):
            check_frame(prefix, with_pycrdt=False)
            cut += 1
    # valid frames cut anywhere are refused, never half-accepted
    for frame in (gen.make("awareness.valid").data, gen.make("update.valid").data, gen.make("sv.valid").data):
        assert isinstance(frame, bytes)
        for prefix in every_truncation(frame):
            with pytest.raises(MalformedMessage):
                parse_message(prefix)
    assert cut > 1000


def test_generator_is_reproducible_across_processes() -> None:
    code = "import sys; from tests.fuzz.test_fuzz_parsers import _digest; print(_digest(int(sys.argv[1])))"
    here = _digest(7)
    assert here == _digest(7)
    assert here != _digest(8)
    other = subprocess.run(
        [sys.executable, "-c", code, "7"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert other == here, "same seed, different frames in another process (hash-map order in the corpus?)"


def _digest(seed: int) -> str:
    gen = FrameGenerator(seed, big_states=False)
    h = hashlib.sha256()
    for frame in gen.frames(1500):
        h.update(frame.kind.encode() + b"\0")
        h.update(frame.data.encode("utf-8", "surrogatepass") if isinstance(frame.data, str) else frame.data)
    return h.hexdigest()


@pytest.mark.parametrize(
    "frame",
    [
        state_vector([], count=2**32 - 1),
        state_vector([(1, 1)], count=2**53 - 1),
        awareness_payload([], count=2**53 - 1),
        update_bytes([], group_count=2**53 - 1),
        b"\x01" + uv(2**53 - 1) + b"\x01\x00",  # one group claiming 2**53 structs
        b"\x00\x01\x01" + uv(2**53 - 1),  # a delete set claiming 2**53 ranges
        update_bytes([(1, 0, [item_struct(8, uv(2**53 - 1))])]),  # Any content claiming 2**53 values
        update_bytes([(1, 0, [item_struct(8, b"\x01\x75" + uv(2**53 - 1))])]),  # an Any array claiming as many
    ],
    ids=["sv", "sv-entries", "awareness", "groups", "structs", "delete-ranges", "any-values", "any-array"],
)
def test_small_frames_claiming_huge_counts_allocate_little(frame: bytes) -> None:
    """A count is never trusted for an allocation: parsing a few bytes allocates a few bytes."""
    tracemalloc.start()
    try:
        for parse in (decode_state_vector, decode_awareness_update, summarize_update):
            try:  # the same bytes may be valid for another parser; the memory is the point
                parse(frame)
            except MalformedMessage:
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"{len(frame)}-byte input made the parsers allocate {peak} bytes"


def test_atheris_bounded_run_finds_nothing(tmp_path: Path) -> None:
    """A short coverage-guided run (libFuzzer via atheris) over the parsers and the summary."""
    pytest.importorskip("atheris")
    runs = int(os.environ.get("VMV_FUZZ_ATHERIS_RUNS", "30000"))
    env = {**os.environ, "RUST_BACKTRACE": "0", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.atheris_parsers", f"-runs={runs}", "-seed=1",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
    assert proc.returncode == 0, f"atheris found a violation:\n{tail}"
    assert f"Done {runs} runs" in proc.stderr, tail
    print(f"\natheris: {runs} runs in {time.perf_counter() - started:.1f} s")


# -- regressions: each found by this suite or reported in issue 14 ------------------------------
def test_sync_step1_with_undecodable_state_vector_is_malformed() -> None:
    """00 00 01 05 (issue 14): pycrdt cannot decode the state vector 05; once it killed every room."""
    frame = KNOWN_BAD["sync_step1_undecodable_sv"]
    assert frame.hex() == "00000105"
    message = parse_message(frame)
    with pytest.raises(MalformedMessage):
        decode_state_vector(message.state_vector)  # type: ignore[union-attr]  (the server decodes it)
    assert check_frame(frame).result == "MalformedMessage"
    with pytest.raises(ValueError):
        Doc().get_update(b"\x05")  # what the server would otherwise have called


def test_state_vector_with_trailing_bytes_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        decode_state_vector(b"\x00\x05")
    with pytest.raises(MalformedMessage):
        decode_state_vector(b"\x01\x01\x01\xff")
    assert decode_state_vector(Doc().get_state()) == {}
    assert check_frame(encode_sync_step1(b"\x00")).result == "accepted"


def test_awareness_nested_5000_deep_is_malformed_not_recursion_error() -> None:
    """Issue 14: json.loads raised RecursionError, which escaped as a 1006 close."""
    for kind in ("object", "array", "mixed"):
        payload = awareness_payload([(1, 1, deep_json(5000, kind).encode())])
        with pytest.raises(MalformedMessage):
            decode_awareness_update(payload)
    frame = KNOWN_BAD["awareness_nested_5000"]
    message = parse_message(frame)
    with pytest.raises(MalformedMessage):
        decode_awareness_update(message.update)  # type: ignore[union-attr]
    # moderately deep states are fine
    assert decode_awareness_update(awareness_payload([(1, 1, deep_json(200).encode())]))[0].state


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_awareness_state_with_nan_or_infinity_is_malformed(literal: str) -> None:
    """Python's json reads them, JSON.parse throws: relayed, they broke every browser peer."""
    with pytest.raises(MalformedMessage):
        decode_awareness_update(encode_awareness_update([(1, 1, f'{{"a": {literal}}}')]))
    # a number too large for a double is valid JSON (JSON.parse gives Infinity)
    assert decode_awareness_update(encode_awareness_update([(1, 1, '{"a": 1e99999}')]))


def test_json_content_is_refused_because_yrs_reads_one_string_more() -> None:
    """ContentJSON (ref 2): Yjs reads n strings, yrs n + 1. One update, two struct layouts:
    the summary named roots {messages, ...} while pycrdt created the root 'evil' with a
    sub-document, which the write guard judges by the summary."""
    hidden = bytes([0x09, 0x01]) + vstr("evil") + vstr("g") + b"\x76\x00"  # Doc item under root 'evil'
    name = b"ab" + hidden + b"\x00"
    update = (
        b"\x01\x02" + uv(77) + uv(0)
        + b"\x02\x01" + vstr("messages") + b"\x00"  # JSON content, n = 0 (yrs reads 1 string)
        + b"\x04\x01" + uv(len(name)) + name + vstr("x")  # the rest, as the summary reads it
        + b"\x00"
    )  # fmt: skip
    doc: Doc = Doc()
    doc.apply_update(update)
    assert "evil" in doc.keys()  # what pycrdt does with it
    with pytest.raises(MalformedMessage, match="JSON content"):
        summarize_update(update)
    check_frame(encode_sync_update(update))


@pytest.mark.parametrize(
    "update",
    [
        update_bytes([(9, 0, [b"\x00" + uv(2**32 + 5)])]),  # GC: yrs integrates 5 clocks
        update_bytes([(9, 0, [item_struct(1, uv(2**32))])]),  # deleted content: yrs sees 0
        update_bytes([(9, 2**32 - 1, [item_struct(4, vstr("ab"))])]),  # clocks run past 2**32 - 1
        update_bytes([], [(9, [(0, 2**32)])]),  # a delete range past it
    ],
    ids=["gc", "deleted", "clock", "delete-range"],
)
def test_clocks_past_32_bits_are_refused(update: bytes) -> None:
    """yrs keeps clocks in 32 bits and wraps longer lengths; Yjs peers do not."""
    with pytest.raises(MalformedMessage):
        summarize_update(update)
    assert summarize_update(update_bytes([(9, 0, [b"\x00" + uv(2**32 - 1)])])).structs == {9: (0, 2**32 - 1)}


def test_zero_length_gc_is_refused_it_panics_yrs() -> None:
    """Found by atheris: a GC of length 0 after a struct makes yrs divide by zero. The
    PanicException is a BaseException, which ``except Exception`` on the server missed."""
    update = update_bytes([(5, 0, [item_struct(4, vstr("a"), root="m"), b"\x00\x00"])])
    assert update.hex() == "010205000401016d0161000000"
    with pytest.raises(BaseException) as info:
        Doc().apply_update(update)
    assert not isinstance(info.value, Exception)  # pyo3's PanicException
    with pytest.raises(MalformedMessage, match="length 0"):
        summarize_update(update)
    with pytest.raises(MalformedMessage, match="length 0"):
        summarize_update(update_bytes([(5, 0, [b"\x0a\x00"])]))  # a skip of length 0


def test_zero_length_items_that_yrs_writes_are_accepted() -> None:
    """yrs writes an empty string item when an edit splits an emoji: valid, must pass."""
    doc: Doc = Doc(client_id=2)
    text = doc.get("t", type=Text)
    text.insert(0, "\U0001f600")
    text.insert(1, "a")
    update = doc.get_update()
    assert "840201" + "00" in update.hex()  # the empty string item
    assert summarize_update(update).structs == {2: (0, 3)}
    for empty in (item_struct(4, vstr("")), item_struct(8, uv(0)), item_struct(1, uv(0))):
        summarize_update(update_bytes([(5, 0, [item_struct(4, vstr("a")), empty])]))


def test_huge_values_in_frames_never_escape() -> None:
    for big in HUGE:
        for frame in (
            sync_frame(0, state_vector([(big, big)])),
            awareness_frame(awareness_payload([(big, big, b"{}")])),
            encode_awareness(encode_awareness_update([(1, 1, "{}")])) + uv(big),
            uv(big),
            b"\x64" + uv(big),
            sync_frame(2, update_bytes([(big, big, [item_struct(4, vstr("x"))])])),
        ):
            check_frame(frame)
