"""docs/deploy.md, tried: deploy/nginx-vmv-sync.conf in a real nginx (Debian's) with TLS.

The shipped site file is used as written, with only its addresses, ports, certificate
and log paths swapped for the test's (each swap must match once, so a drifting file
fails here). A self-signed certificate is made in the test. Through nginx: the page
and the API over https, http redirected to https, a browser Origin accepted, a
spoofed X-Forwarded-For dropped (vmv-sync trusts the proxy and logs the real
address), a stock y-websocket provider (Node) and the Python client syncing over wss,
and no token in either access log.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT, ServerProcess
from tests.interop.nodepeer import NodePeer
from vmv_sync.client import WorkshopClient

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx-vmv-sync.conf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vmv-sync test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def _site(folder: Path, vmv_port: int, http_port: int, tls_port: int, cert: Path, key: Path) -> str:
    text = SITE.read_text()
    swaps = [
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{vmv_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl;", f"listen 127.0.0.1:{tls_port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("/etc/letsencrypt/live/vmv.example.org/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/vmv.example.org/privkey.pem", str(key)),
        ("/var/log/nginx/vmv-sync.access.log", str(folder / "access.log")),
    ]
    for old, new in swaps:
        assert text.count(old) == 1, f"deploy/nginx-vmv-sync.conf changed: {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[int], tuple[int, int, Path, Path]]]:
    """Start nginx in front of a vmv-sync port: (http port, tls port, certificate, access log)."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run 'apt-get install -y nginx' (scripts/test does)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(vmv_port: int) -> tuple[int, int, Path, Path]:
        folder = tmp_path / "nginx"
        folder.mkdir()
        cert, key = _self_signed(folder)
        http_port, tls_port = _free_port(), _free_port()
        (folder / "site.conf").write_text(_site(folder, vmv_port, http_port, tls_port, cert, key))
        temp = "".join(f"{kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (folder / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} info;\nworker_processes 1;\n"
            + "events { worker_connections 256; }\n"
            + f"http {{\n{temp}include {folder / 'site.conf'};\n}}\n"
        )
        test = subprocess.run([NGINX, "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")], capture_output=True, text=True)
        assert test.returncode == 0, test.stderr
        proc = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        procs.append(proc)
        deadline = time.monotonic() + 15
        while True:  # nginx is up once its TLS port accepts
            assert proc.poll() is None, (folder / "error.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
        return http_port, tls_port, cert, folder / "access.log"

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_tls_through_nginx_with_the_python_client_and_a_stock_provider(
    server_factory: Callable[..., ServerProcess], nginx: Callable[[int], tuple[int, int, Path, Path]],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    server = server_factory(env={"VMV_FORWARDED_ALLOW_IPS": "127.0.0.1"}, args=())
    http_port, tls_port, cert, nginx_log = nginx(server.port)
    base = f"https://127.0.0.1:{tls_port}"
    tls = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=base, verify=tls, timeout=10) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        page = http.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        redirect = httpx.get(f"http://127.0.0.1:{http_port}/healthz")
        assert redirect.status_code == 301 and redirect.headers["location"].startswith("https://")
        # a page on the public origin may POST (Origin is checked against the Host nginx forwards)
        created = http.post("/api/workshops", json={"title": "Deployed", "name": "Fay", "values": ["Trust"]},
                            headers={"origin": base, "x-forwarded-for": "198.51.100.66"})  # fmt: skip
        assert created.status_code == 201, created.text
        assert http.post("/api/workshops", json={"title": "x", "name": "y"}, headers={"origin": "https://evil.example"}).status_code == 403
        body = created.json()
        joined = http.post(f"/api/workshops/{body['workshop_id']}/join", json={"invite_code": body["invite_code"], "name": "Ann"}).json()
    wid, fay_token, ann = body["workshop_id"], body["token"], joined

    # the Python client and a stock y-websocket provider over wss, trusting the test's CA
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(cert))

    async def main() -> None:
        wss = f"wss://127.0.0.1:{tls_port}"
        async with WorkshopClient(wss, wid, token=fay_token, store_path=tmp_path / "fay.sqlite3") as fay:
            await fay.wait_connected(timeout=15)
            await fay.post_message("hello over wss")
            await fay.wait_saved(timeout=15)
            async with NodePeer(wss + "/workshops", wid, ann["participant_id"], ann["token"]) as node:
                await node.call("synced", timeout=15)
                await node.call("write_own", tag="tls")
                with anyio.fail_after(15):
                    while not any(m.text == f"hello from {ann['participant_id']} tls" for m in fay.messages):
                        await anyio.sleep(0.05)
                snapshot = await node.call("snapshot")
                assert any(m.get("text") == "hello over wss" for m in snapshot["messages"])

    anyio.run(main)
    server.stop()
    vmv_log = "".join(server.log)
    # vmv-sync saw the real client (nginx replaced the spoofed header) and the sessions
    assert "client=198.51.100.66" not in vmv_log
    assert any("http POST /api/workshops status=201" in line and "client=127.0.0.1" in line for line in server.log)
    assert vmv_log.count("vmv_sync.access: ws /workshops/") >= 2
    for text in (vmv_log, nginx_log.read_text()):
        assert fay_token not in text and ann["token"] not in text and "eyJ" not in text
    assert f'"GET /workshops/{wid}" 101 ' in nginx_log.read_text()  # the WebSocket sessions, without their query
