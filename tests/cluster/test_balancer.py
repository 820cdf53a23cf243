"""Two processes behind a real nginx routing by workshop id (deploy/nginx-vmv-sync-cluster.conf).

Through nginx: a stock y-websocket provider (Node) and the Python client; a client of
the other process (not routed) meets them through its relay; the owner is killed and
nginx sends the reconnecting clients to the survivor, which takes the workshop over.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.interop.nodepeer import NodePeer

from .conftest import Cluster, client, eventually, free_port, owner_of

pytestmark = pytest.mark.anyio

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx-vmv-sync-cluster.conf"


def cluster_site(ports: list[int], listen: int, folder: Path) -> str:
    """The shipped file with the test's ports (each swap must match once)."""
    text = SITE.read_text()
    swaps = [
        ("    server 127.0.0.1:8001 max_fails=1 fail_timeout=2s;\n    server 127.0.0.1:8002 max_fails=1 fail_timeout=2s;\n",
         "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n" for p in ports)),
        ("listen 127.0.0.1:8000;", f"listen 127.0.0.1:{listen};"),
    ]  # fmt: skip
    for old, new in swaps:
        assert text.count(old) == 1, f"deploy/nginx-vmv-sync-cluster.conf changed: {old!r}"
        text = text.replace(old, new)
    return text


def nginx_conf(folder: Path, site: str) -> Path:
    (folder / "site.conf").write_text(site)
    temp = "".join(
        f"{kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = folder / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\nworker_processes 1;\n"
        + "events { worker_connections 512; }\n"
        + f"http {{\naccess_log off;\n{temp}include {folder / 'site.conf'};\n}}\n"
    )
    return conf


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[Callable[[list[int]], int]]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run 'apt-get install -y nginx' (scripts/test does)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(ports: list[int]) -> int:
        folder = tmp_path / "nginx"
        folder.mkdir()
        listen = free_port()
        conf = nginx_conf(folder, cluster_site(ports, listen, folder))
        checked = subprocess.run([NGINX, "-t", "-p", str(folder), "-c", str(conf)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        proc = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        procs.append(proc)
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, (folder / "error.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                return listen
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_through_nginx_routed_by_workshop_with_a_stock_provider_and_the_python_client(
    cluster: Cluster, balancer: Callable[[list[int]], int]
) -> None:
    env = {"VMV_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    nodes = [cluster.start("a", env=env), cluster.start("b", env=env)]
    port = balancer([n.port for n in nodes])
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
    async with (
        client(f"ws://127.0.0.1:{port}/workshops", wid, made["token"]) as fay,
        client(other, wid, bob["token"]) as bob_client,  # not routed: served by a relay
    ):
        await fay.wait_connected(10)
        await fay.post_message("hello through nginx")
        await fay.wait_saved(10)
        async with NodePeer(f"ws://127.0.0.1:{port}/workshops", wid, ann["participant_id"], ann["token"]) as node:
            await node.call("synced", timeout=15)
            await node.call("write_own", tag="lb")
            expected = f"hello from {ann['participant_id']} lb"
            await fay.wait_for(lambda: any(m.text == expected for m in fay.messages), 10)
            await bob_client.wait_for(lambda: any(m.text == expected for m in bob_client.messages), 10)
            snapshot = await node.call("snapshot")
            assert any(m.get("text") == "hello through nginx" for m in snapshot["messages"])
        # the owner dies: nginx sends fay's reconnect to the survivor, which takes over
        owner_node = next(n for n, name in zip(nodes, "ab", strict=True) if name == owner)
        owner_node.kill()
        await eventually(lambda: owner_of(cluster.prefix, wid) not in (None, owner), 8, "a new owner")
        await fay.post_message("after the failover")
        await bob_client.post_message("bob too")
        await fay.wait_saved(15)
        await bob_client.wait_saved(15)
        await fay.wait_for(lambda: {"after the failover", "bob too"} <= {m.text for m in fay.messages}, 10)
