"""Coverage-guided fuzzing of the pure parsers with atheris (libFuzzer for Python).

Run it as a module; every argument goes to libFuzzer::

    .venv/bin/python -m tests.fuzz.atheris_parsers -runs=20000 -seed=1      # bounded (CI)
    .venv/bin/python -m tests.fuzz.atheris_parsers -max_total_time=3600 data/fuzz-corpus

Each input is taken three ways: as a whole frame (``parse_message``), as an update
payload (``summarize_update``, then pycrdt on what it accepts) and as an awareness
payload and a state vector; :mod:`tests.fuzz.oracle` says what must hold. The
starting corpus is the seeded generator's frames (:mod:`tests.fuzz.frames`), so
libFuzzer mutates from real Yjs updates rather than from nothing. A violation is a
crash: libFuzzer prints the input and writes it to ``crash-<sha1>``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["vmv_sync"]):
    from tests.fuzz.oracle import check_awareness, check_frame, check_state_vector, check_update

__all__ = ("test_one_input", "main", "write_seed_corpus")


def test_one_input(data: bytes) -> None:
    """One libFuzzer input: raise (a Violation) only when an invariant breaks."""
    check_frame(data)
    if data:
        # the same bytes as the payloads the frame wrappers would carry
        check_update(data)
        check_awareness(data)
        check_state_vector(data)


def write_seed_corpus(folder: Path, seed: int = 1, count: int = 400) -> Path:
    """The generator's frames (small ones) as starting inputs, one file each."""
    from tests.fuzz.frames import FrameGenerator

    folder.mkdir(parents=True, exist_ok=True)
    gen = FrameGenerator(seed, big_states=False)
    written = 0
    while written < count:
        frame = gen.frame()
        if isinstance(frame.data, str) or len(frame.data) > 4096:
            continue
        (folder / f"seed-{written:04d}").write_bytes(frame.data)
        written += 1
    for i, update in enumerate(gen.corpus.full + gen.corpus.crafted):
        (folder / f"update-{i:04d}").write_bytes(update)
    return folder


def main(argv: list[str]) -> None:
    args = list(argv)
    # libFuzzer takes corpus folders as its positional arguments; without one,
    # start from a fresh seed corpus in a temporary folder.
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(write_seed_corpus(Path(tempfile.mkdtemp(prefix="vmv-fuzz-corpus-")))))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
