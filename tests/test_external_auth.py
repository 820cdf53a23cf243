"""Tokens signed by the embedding application (docs/auth.md), on a real server.

Keys are generated here (RSA, P-256, Ed25519); the server reads a JWKS file, a JWKS
URL (a local HTTP server) or a PEM file. Covered: each algorithm over HTTP and
WebSocket beside vmv-sync's own HS256 tokens, issuer/audience/expiry/workshop checks,
claim mapping, algorithm confusion and ``alg: none``, key rotation without a
restart (file and URL), bad settings at start, and handing a live Python client a
fresh token (reconnect) without losing its pending edits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import ROOT, ServerProcess
from vmv_sync.client import WorkshopClient

Factory = Callable[..., ServerProcess]
ISSUER, AUDIENCE = "https://login.example", "vmv-sync"


class Key:
    """A private key of the application, its algorithm, and its public JWK."""

    def __init__(self, alg: str, kid: str) -> None:
        self.alg, self.kid = alg, kid
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()
            self.jwk = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        self.jwk |= {"kid": kid, "use": "sig", "alg": alg}

    def pem(self) -> bytes:
        return self.private.public_key().public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, workshop: object, sub: str = "u-ann", *, ttl: float = 600, kid: bool = True, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": sub, "name": "Ann", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + int(ttl),
                "app_metadata": {"vmv_role": "participant", "workshops": workshop}, **claims}  # fmt: skip
        headers = {"kid": self.kid} if kid else None
        return jwt.encode(body, self.private, algorithm=self.alg, headers=headers)


def _jwks(*keys: Key) -> str:
    return json.dumps({"keys": [k.jwk for k in keys]})


def _env(**extra: str) -> dict[str, str]:
    return {"VMV_AUTH_ISSUER": ISSUER, "VMV_AUTH_AUDIENCE": AUDIENCE, "VMV_AUTH_CLAIM_ROLE": "app_metadata.vmv_role",
            "VMV_AUTH_CLAIM_WORKSHOP": "app_metadata.workshops", **extra}  # fmt: skip


def _workshop(server: ServerProcess) -> str:
    answer = httpx.post(server.url + "/api/workshops", json={"title": "Embedded", "name": "Fay", "values": ["Trust"]})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workshop_id"])


def _state(server: ServerProcess, workshop_id: str, token: str) -> int:
    return httpx.get(f"{server.url}/workshops/{workshop_id}/state", headers={"authorization": f"Bearer {token}"}).status_code


def _ws_close_code(server: ServerProcess, workshop_id: str, token: str) -> int | None:
    """None if the WebSocket is accepted (the server's first sync frame arrives), else its close code."""
    with connect(f"{server.ws(workshop_id)}?token={token}") as ws:
        try:
            ws.recv(timeout=10)
            return None
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else -1


def _forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()) if secret else ""
    return signing_input + "." + signature


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {alg: Key(alg, f"{alg.lower()}-1") for alg in ("RS256", "ES256", "EdDSA")}


def test_tokens_of_the_application_beside_our_own(server_factory: Factory, tmp_path: Path, keys: dict[str, Key]) -> None:
    jwks = tmp_path / "keys.jwks"
    jwks.write_text(_jwks(*keys.values()))
    server = server_factory(env=_env(VMV_AUTH_JWKS=str(jwks)), args=())
    wid, other = _workshop(server), _workshop(server)
    for key in keys.values():  # every algorithm, over HTTP and the WebSocket
        token = key.sign(wid)
        assert _state(server, wid, token) == 200, key.alg
        assert _ws_close_code(server, wid, token) is None, key.alg
    rs = keys["RS256"]
    assert _state(server, wid, rs.sign([other, wid])) == 200  # a list of workshops
    assert _state(server, wid, rs.sign(other)) == 403
    assert _ws_close_code(server, wid, rs.sign(other)) == 4403
    for bad in (
        rs.sign(wid, iss="https://elsewhere.example"), rs.sign(wid, aud="another-service"), rs.sign(wid, ttl=-120),
        rs.sign(wid, sub="not a valid id!"), rs.sign(wid, app_metadata={"vmv_role": "admin", "workshops": wid}),
        Key("RS256", "rs256-1").sign(wid),  # the right key id, another key
        Key("ES256", "unknown").sign(wid),
        # algorithm confusion: HS256 with the public key as the secret, and no signature at all
        _forged({"alg": "HS256", "typ": "JWT", "kid": rs.kid}, jwt.decode(rs.sign(wid), options={"verify_signature": False}), rs.pem()),
        _forged({"alg": "none", "typ": "JWT"}, jwt.decode(rs.sign(wid), options={"verify_signature": False}), None),
    ):  # fmt: skip
        assert _state(server, wid, bad) == 401, jwt.decode(bad, options={"verify_signature": False})
    assert _ws_close_code(server, wid, rs.sign(wid, ttl=-120)) == 4401

    # rotation: the file is replaced; the old key stops working, the new one works, no restart
    new = Key("ES256", "es256-2")
    old_token = keys["ES256"].sign(wid)
    assert _state(server, wid, old_token) == 200
    staged = tmp_path / "keys.jwks.new"
    staged.write_text(_jwks(new, keys["RS256"]))
    os.replace(staged, jwks)
    assert _state(server, wid, new.sign(wid)) == 200
    assert _state(server, wid, old_token) == 401
    assert _state(server, wid, rs.sign(wid)) == 200
    server.stop()
    assert not any("eyJ" in line for line in server.log)


def test_a_pem_public_key_and_a_default_role(server_factory: Factory, tmp_path: Path, keys: dict[str, Key]) -> None:
    pem = tmp_path / "app.pem"
    pem.write_bytes(keys["EdDSA"].pem())
    server = server_factory(env=_env(VMV_AUTH_PUBLIC_KEY=str(pem), VMV_AUTH_DEFAULT_ROLE="observer"), args=())
    wid = _workshop(server)
    key = keys["EdDSA"]
    assert _state(server, wid, key.sign(wid, kid=False)) == 200
    assert _state(server, wid, key.sign(wid, app_metadata={"workshops": wid})) == 200  # no role: the default
    assert _state(server, wid, keys["RS256"].sign(wid)) == 401


@pytest.fixture
def jwks_url() -> Iterator[tuple[str, list[str]]]:
    """A local identity provider serving ``served[0]`` as its JWKS."""
    served = [""]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = served[0].encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json", served
    httpd.shutdown()
    httpd.server_close()


def test_a_jwks_url_is_fetched_again_for_a_new_key(server_factory: Factory, keys: dict[str, Key], jwks_url: tuple[str, list[str]]) -> None:
    url, served = jwks_url
    served[0] = _jwks(keys["RS256"])
    server = server_factory(env=_env(VMV_AUTH_JWKS=url, VMV_AUTH_JWKS_REFRESH="1"), args=())
    wid = _workshop(server)
    assert _state(server, wid, keys["RS256"].sign(wid)) == 200
    rotated = Key("RS256", "rs256-2")
    served[0] = _jwks(rotated)
    deadline = time.monotonic() + 15  # an unknown kid is fetched for at most once per refresh period
    while _state(server, wid, rotated.sign(wid)) != 200:
        assert time.monotonic() < deadline, "the rotated key was never fetched"
        time.sleep(0.1)
    assert _state(server, wid, keys["RS256"].sign(wid)) == 401


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"VMV_AUTH_JWKS": "/nonexistent/keys.jwks"}, "cannot read the key file /nonexistent/keys.jwks"),
        ({"VMV_AUTH_JWKS": "x", "VMV_AUTH_ALGORITHMS": "HS256"}, "only public-key algorithms are accepted (HS256)"),
        ({"VMV_AUTH_PUBLIC_KEY": str(ROOT / "README.md")}, "is not a PEM public key"),
    ],
)
def test_bad_key_settings_stop_the_server_with_one_line(tmp_path: Path, env: dict[str, str], words: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VMV_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--port", "0", "--db", str(tmp_path / "v.sqlite3")],
        capture_output=True, text=True, timeout=30, env={**environ, **env},
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and words in lines[0], result.stderr


def test_a_live_client_takes_a_fresh_token_without_losing_edits(server_factory: Factory, tmp_path: Path, keys: dict[str, Key]) -> None:
    jwks = tmp_path / "keys.jwks"
    jwks.write_text(_jwks(keys["ES256"]))
    server = server_factory(env={"VMV_AUTH_JWKS": str(jwks)}, args=())  # default claims: sub, name, role, wid
    wid = _workshop(server)
    key = keys["ES256"]
    short = key.sign(wid, ttl=60, role="participant", wid=wid)

    async def main() -> None:
        async with WorkshopClient(server.url.replace("http", "ws"), wid, token=short, store_path=tmp_path / "ann.sqlite3") as client:
            await client.wait_connected(timeout=15)
            await client.post_message("before the refresh")
            await client.wait_saved(timeout=15)
            # the application mints a fresh token (here after a key rotation) and hands it over
            fresh_key = Key("EdDSA", "eddsa-2")
            jwks.write_text(_jwks(key, fresh_key))
            client.token = fresh_key.sign(wid, ttl=3600, role="participant", wid=wid)
            client.reconnect()  # drops the live session and opens one with the new token
            await client.post_message("during the refresh")  # pending, kept in the local replica
            await client.wait_connected(timeout=15)
            await client.wait_saved(timeout=15)
            assert [m.text for m in client.messages] == ["before the refresh", "during the refresh"]

    anyio.run(main)
    state = httpx.get(f"{server.url}/workshops/{wid}/export", headers={"authorization": f"Bearer {key.sign(wid, role='participant', wid=wid)}"})
    assert state.status_code == 200 and "during the refresh" in state.text and "before the refresh" in state.text
