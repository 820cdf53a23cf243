"""The real server under fuzzed frames, with honest neighbours in the same and another workshop.

CI mode: 100,000 frames per run (``VMV_FUZZ_FRAMES``), auth off and auth on.
Deep mode: ``python -m tests.fuzz server --frames 5000000`` (docs/fuzzing.md).
Also the server-side regressions of issue 14, each with the exact frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
import websockets

from vmv_sync.protocol import encode_sync_step1

from .frames import KNOWN_BAD, awareness_frame, awareness_payload
from .server_fuzz import ALLOWED_CLOSES, FuzzConfig, Neighbour, fetch_doc, rss_mib, run_server_fuzz, same_document

pytestmark = pytest.mark.anyio

CI_FRAMES = int(os.environ.get("VMV_FUZZ_FRAMES", "100000"))
SEED = int(os.environ.get("VMV_FUZZ_SEED", "20141"))
SECRET = "fuzz-secret-" + "x" * 32
#: the fuzz server: rate limits out of the way (they would end every connection at
#: frame 1,000), commits survive a crash (not a power loss), which is all a test needs
FUZZ_ENV = {"VMV_RATE_LIMIT": "1000000", "VMV_RATE_BURST": "1000000", "VMV_SYNCHRONOUS": "normal"}


@dataclass
class Seat:
    pid: str
    token: str


async def _workshop(http: httpx.AsyncClient, *names: str) -> tuple[str, Seat, dict[str, Seat]]:
    r = await http.post("/api/workshops", json={"title": "Fuzz", "name": "Fay", "values": ["Honesty"]})
    assert r.status_code == 201, r.text
    body = r.json()
    seats = {}
    for name in names:
        j = await http.post(f"/api/workshops/{body['workshop_id']}/join", json={"invite_code": body["invite_code"], "name": name})
        assert j.status_code == 200, j.text
        seats[name] = Seat(j.json()["participant_id"], j.json()["token"])
    return body["workshop_id"], Seat(body["participant_id"], body["token"]), seats


async def _settle(server: Any, connections: int) -> None:
    """Wait until the server holds only ``connections`` (the attackers' are gone)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        with anyio.fail_after(30):
            while (await http.get("/healthz")).json().get("connections", 0) > connections:
                await anyio.sleep(0.1)


async def _fuzz(server: Any, cfg: FuzzConfig, pairs: list[tuple[Neighbour, Neighbour]], docs: dict[str, str]) -> None:
    report = await run_server_fuzz(server, cfg, pairs)
    print("\nserver fuzz:", report.summary())
    print("close reasons:", dict(report.reasons.most_common(12)))
    problems = report.problems()
    await _settle(server, 0)
    report.rss_end = rss_mib(server.proc.pid)
    if report.rss_end > report.rss_baseline + cfg.rss_bound_mib:
        problems.append(f"RSS {report.rss_baseline:.0f} -> {report.rss_end:.0f} MiB after the run (bound +{cfg.rss_bound_mib:.0f})")
    print(f"RSS at the end: {report.rss_end:.0f} MiB")
    live = {name: await fetch_doc(url) for name, url in docs.items()}
    assert server.stop() == 0, "the server did not stop cleanly after the run"
    server.restart()
    for name, url in docs.items():
        differs = same_document(live[name], await fetch_doc(url))
        if differs:
            problems.append(f"workshop {name}: the stored document is not the live one: {differs}")
    assert report.frames_sent >= cfg.frames * 0.9 or report.problems(), f"only {report.frames_sent} frames sent"
    assert not problems, "\n".join(problems[:20])


@pytest.mark.timeout(300)
async def test_fuzz_server_auth_off(server_factory) -> None:
    server = server_factory(env=FUZZ_ENV)
    a, b = server.ws("fuzz-a"), server.ws("fuzz-b")
    pairs = [(Neighbour(a, "na1"), Neighbour(a, "na2")), (Neighbour(b, "nb1"), Neighbour(b, "nb2"))]
    cfg = FuzzConfig(frames=CI_FRAMES, seed=SEED, attack_urls=[a])
    await _fuzz(server, cfg, pairs, {"a": a, "b": b})


@pytest.mark.timeout(300)
async def test_fuzz_server_auth_on_as_participant(server_factory) -> None:
    """Half the frames of the auth-off run: the guard makes each refused update cost more."""
    server = server_factory(env={**FUZZ_ENV, "VMV_SECRET": SECRET}, args=())
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        wa, fa, sa = await _workshop(http, "Ann", "Xavier")
        wb, fb, sb = await _workshop(http, "Bob")

    def url(wid: str, seat: Seat) -> str:
        return f"{server.ws(wid)}?token={seat.token}"

    pairs = [
        (Neighbour(url(wa, fa), fa.pid), Neighbour(url(wa, sa["Ann"]), sa["Ann"].pid)),
        (Neighbour(url(wb, fb), fb.pid), Neighbour(url(wb, sb["Bob"]), sb["Bob"].pid)),
    ]
    attacker = url(wa, sa["Xavier"])
    # now and then a connection with a forged token (4401) or the other workshop's (4403)
    urls = [attacker] * 8 + [f"{server.ws(wa)}?token=not.a.token", f"{server.ws(wa)}?token={sb['Bob'].token}"]
    cfg = FuzzConfig(frames=CI_FRAMES // 2, seed=SEED + 1, attack_urls=urls, survivable_updates=False)
    await _fuzz(server, cfg, pairs, {"a": url(wa, fa), "b": url(wb, fb)})


# -- server regressions of issue 14: each sends one exact frame ---------------------------------
async def _one_frame(url: str, frame: bytes) -> tuple[int, str]:
    """Send ``frame`` on a fresh connection, then a barrier; the close code (1000: survived)."""
    async with websockets.connect(url, max_size=None, compression=None, open_timeout=10) as ws:
        await ws.recv()  # the server's sync step 1
        await ws.send(frame)
        await ws.send(encode_sync_step1(b"\x00"))
        try:
            with anyio.fail_after(20):
                async for reply in ws:
                    if isinstance(reply, bytes) and reply[:2] == b"\x00\x01":
                        await ws.close()
                        break
        except websockets.ConnectionClosed:
            pass
    with anyio.fail_after(10):
        await ws.wait_closed()
    return (ws.close_code if ws.close_code is not None else 1006), ws.close_reason or ""


async def _neighbours_still_sync(pairs: list[tuple[Neighbour, Neighbour]], tag: str) -> None:
    for a, b in pairs:
        for writer, reader in ((a, b), (b, a)):
            await writer.post(f"{tag}-{writer.author}")
            await reader.wait_for(lambda r=reader, m=f"{tag}-{writer.author}": r.has_message(m), 10)


async def _with_neighbours(server: Any, frame: bytes, expected: int) -> None:
    a, b = server.ws("bug-a"), server.ws("bug-b")
    pairs = [(Neighbour(a, "a1"), Neighbour(a, "a2")), (Neighbour(b, "b1"), Neighbour(b, "b2"))]
    async with anyio.create_task_group() as tg:
        for pair in pairs:
            for n in pair:
                await tg.start(n.run)
                with anyio.fail_after(10):
                    await n.synced.wait()
        await _neighbours_still_sync(pairs, "before")
        code, reason = await _one_frame(a, frame)
        assert code == expected, f"frame {frame[:64].hex()}: close {code} ({reason!r}), expected {expected}"
        await _neighbours_still_sync(pairs, "after")
        async with httpx.AsyncClient() as http:
            assert (await http.get(server.url + "/healthz")).status_code == 200
        for pair in pairs:
            for n in pair:
                assert not n.closed.is_set(), f"neighbour {n.author} was closed with {n.close_code}"
                await n.ws.close()


async def test_undecodable_sync_step1_closes_only_its_sender(server) -> None:
    """00 00 01 05: a sync step 1 whose state vector pycrdt cannot decode killed every workshop."""
    await _with_neighbours(server, KNOWN_BAD["sync_step1_undecodable_sv"], 4400)


async def test_awareness_nested_5000_deep_closes_4400(server) -> None:
    """Awareness JSON nested 5,000 deep closed with 1006 instead of 4400."""
    await _with_neighbours(server, KNOWN_BAD["awareness_nested_5000"], 4400)


async def test_zero_length_struct_closes_4400(server) -> None:
    """010205000401016d0161000000: a GC of length 0 after a struct panics yrs (PanicException is
    not an Exception); refused by the update summary before pycrdt sees it."""
    frame = b"\x00\x02" + bytes([13]) + bytes.fromhex("010205000401016d0161000000")
    await _with_neighbours(server, frame, 4400)


async def test_million_awareness_client_ids_cost_little_memory(server) -> None:
    """Issue 14: 1,000,000 awareness client ids in 7 MB of frames cost +310 MiB of RSS."""
    url = server.ws("many-ids")
    async with httpx.AsyncClient() as http:
        await http.get(server.url + "/healthz")
    base = rss_mib(server.proc.pid)
    sent = 0
    closes: list[int] = []
    next_id = 1
    with anyio.fail_after(120):
        while sent < 1_000_000:
            async with websockets.connect(url, max_size=None, compression=None, open_timeout=10) as ws:
                await ws.recv()
                try:
                    while sent < 1_000_000:
                        # 10,000 entries of (3-byte id, clock 1, "{}"): 7 bytes each
                        entries = [(next_id + i, 1, b"{}") for i in range(10_000)]
                        next_id += 10_000
                        await ws.send(awareness_frame(awareness_payload(entries)))
                        sent += 10_000
                    await ws.send(encode_sync_step1(b"\x00"))
                    async for reply in ws:
                        if isinstance(reply, bytes) and reply[:2] == b"\x00\x01":
                            break
                    await ws.close()
                except websockets.ConnectionClosed:
                    pass
            await ws.wait_closed()
            closes.append(ws.close_code if ws.close_code is not None else 1006)
    await _settle(server, 0)
    grown = rss_mib(server.proc.pid) - base
    assert set(closes) <= ALLOWED_CLOSES, f"closes {sorted(set(closes))}"
    assert grown < 100, f"1,000,000 awareness client ids cost +{grown:.0f} MiB of RSS ({len(closes)} connections)"


#: found by atheris (tests/fuzz/atheris_parsers.py): the update summary accepts it, and
#: after PANIC_PREFIX pycrdt panics on it ("called Option::unwrap() on a None value")
PANIC_PREFIX = bytes.fromhex("020101000401016d01610131000401016d016100")
PANIC_UPDATE = bytes.fromhex(
    "0a0101010101010101010101010101010101010101010a0a3101010101010101010101010101010101010101010101010101"
    "010101010101010101010101010101010101010101010a0a010109010101010a0a3101010101010101010101010101010101"
    "0101010101010101010101010101010101010101010101010a0a310101010101010101010101010101010101010101010101"
    "0101010101010101010101010101010101010101010101010a0a010109010101010a0a3101010101010101010101010101"
    "0101010101010a"
)


async def test_update_that_panics_pycrdt_closes_only_its_sender_4400(server) -> None:
    """A pyo3 PanicException is a BaseException: ``except Exception`` around apply_update
    misses it, the room fails (1011) and the panic escapes to uvicorn. Expected: 4400."""
    from pycrdt import Doc

    doc: Doc = Doc()
    doc.apply_update(PANIC_PREFIX)
    with pytest.raises(BaseException) as info:
        doc.apply_update(PANIC_UPDATE)
    assert not isinstance(info.value, Exception)
    assert await _one_frame(server.ws("bug-a"), b"\x00\x02" + bytes([len(PANIC_PREFIX)]) + PANIC_PREFIX) == (1000, "")
    frame = b"\x00\x02" + bytes([0xCE, 0x01]) + PANIC_UPDATE  # var-uint 206
    assert len(PANIC_UPDATE) == 206
    await _with_neighbours(server, frame, 4400)
