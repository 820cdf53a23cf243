"""Two processes behind a real HAProxy routing by workshop id (deploy/haproxy-vmv-sync-cluster.cfg).

The HAProxy twin of test_balancer.py (nginx): Debian's haproxy runs the shipped file,
with only its ports changed, in front of two real processes. Through it: the Python
client and a stock y-websocket provider (Node), both sent to one process by the
workshop id in the path; a client of the other process (not routed) meets them through
its relay; the owner is killed and HAProxy sends the reconnecting clients to the
survivor, which takes the workshop over.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, ServerProcess
from tests.interop.nodepeer import NodePeer

from .conftest import Cluster, client, eventually, free_port, owner_of

pytestmark = pytest.mark.anyio

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CONFIG = ROOT / "deploy" / "haproxy-vmv-sync-cluster.cfg"


def cluster_config(ports: list[int], listen: int) -> str:
    """The shipped file with the test's ports (each swap must match once)."""
    text = CONFIG.read_text()
    swaps = [
        ("    server a 127.0.0.1:8001\n    server b 127.0.0.1:8002\n",
         "".join(f"    server {name} 127.0.0.1:{p}\n" for name, p in zip("abcdefgh", ports, strict=False))),
        ("bind 127.0.0.1:8000\n", f"bind 127.0.0.1:{listen}\n"),
    ]  # fmt: skip
    for old, new in swaps:
        assert text.count(old) == 1, f"deploy/haproxy-vmv-sync-cluster.cfg changed: {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[list[int]], int]]:
    if not Path(HAPROXY).exists():
        pytest.fail("haproxy is missing: run 'apt-get install -y haproxy' (scripts/test does)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(ports: list[int]) -> int:
        listen = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(cluster_config(ports, listen))
        checked = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        log = (tmp_path / "haproxy.log").open("wb")
        proc = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.append(proc)
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, (tmp_path / "haproxy.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                return listen
            except OSError:
                assert time.monotonic() < deadline, "haproxy did not listen"
                time.sleep(0.05)

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGUSR1)  # soft stop
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sockets_opened(node: ServerProcess) -> float:
    """How many WebSocket connections ``node`` admitted (its own /metrics)."""
    text = httpx.get(f"{node.url}/metrics", timeout=10).text
    found = re.search(r"^vmv_connections_opened_total (\S+)$", text, re.MULTILINE)
    assert found, "vmv_connections_opened_total missing from /metrics"
    return float(found.group(1))


async def test_through_haproxy_routed_by_workshop_with_a_stock_provider_and_the_python_client(
    cluster: Cluster, haproxy: Callable[[list[int]], int]
) -> None:
    env = {"VMV_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    nodes = [cluster.start("a", env=env), cluster.start("b", env=env)]
    port = haproxy([n.port for n in nodes])
    try:
        await through_haproxy(cluster, nodes, port)
    except BaseException:
        for name, n in zip("ab", nodes, strict=True):  # shown by pytest with the failure
            print(f"---- process {name} ----\n" + "".join(n.log[-80:]))
        raise


async def through_haproxy(cluster: Cluster, nodes: list[ServerProcess], port: int) -> None:
    front = f"http://127.0.0.1:{port}"
    created = httpx.post(
        f"{front}/api/workshops", json={"title": "Balanced", "name": "Fay", "values": ["Trust"]}, timeout=10
    )
    assert created.status_code == 201, created.text
    made = created.json()
    wid = made["workshop_id"]
    ann = httpx.post(
        f"{front}/api/workshops/{wid}/join", json={"invite_code": made["invite_code"], "name": "Ann"}, timeout=10
    ).json()
    bob = httpx.post(
        f"{front}/api/workshops/{wid}/join", json={"invite_code": made["invite_code"], "name": "Bob"}, timeout=10
    ).json()
    owner = owner_of(cluster.prefix, wid)
    other = next(n for n, name in zip(nodes, "ab", strict=True) if name != owner)
    before = [sockets_opened(n) for n in nodes]
    async with client(f"ws://127.0.0.1:{port}/workshops", wid, made["token"]) as fay:
        await fay.wait_connected(10)
        await fay.post_message("hello through haproxy")
        await fay.wait_saved(10)
        async with NodePeer(f"ws://127.0.0.1:{port}/workshops", wid, ann["participant_id"], ann["token"]) as node:
            await node.call("synced", timeout=15)
            # routed by the workshop id: both sockets reached the same process
            opened = sorted(sockets_opened(n) - b for n, b in zip(nodes, before, strict=True))
            assert opened == [0, 2], opened
            async with client(other, wid, bob["token"]) as bob_client:  # not routed: a relay serves it
                await node.call("write_own", tag="lb")
                expected = f"hello from {ann['participant_id']} lb"
                await fay.wait_for(lambda: any(m.text == expected for m in fay.messages), 10)
                await bob_client.wait_for(lambda: any(m.text == expected for m in bob_client.messages), 10)
                snapshot = await node.call("snapshot")
                assert any(m.get("text") == "hello through haproxy" for m in snapshot["messages"])
                # the owner dies: HAProxy sends the reconnects to the survivor, which takes over
                owner_node = next(n for n, name in zip(nodes, "ab", strict=True) if name == owner)
                owner_node.kill()
                await eventually(lambda: owner_of(cluster.prefix, wid) not in (None, owner), 8, "a new owner")
                await fay.post_message("after the failover")
                await bob_client.post_message("bob too")
                await fay.wait_saved(15)
                await bob_client.wait_saved(15)
                await fay.wait_for(lambda: {"after the failover", "bob too"} <= {m.text for m in fay.messages}, 10)
                # and the stock provider, reconnected through HAProxy, has both too
                await node.call("write_own", tag="after")
                await bob_client.wait_for(
                    lambda: any(m.text == f"hello from {ann['participant_id']} after" for m in bob_client.messages), 15
                )
