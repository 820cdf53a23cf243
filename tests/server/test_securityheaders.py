"""The headers every response carries (server/securityheaders.py)."""

from __future__ import annotations

import pytest
from starlette.types import Message

from vmv_sync.server.securityheaders import security_headers, with_headers

pytestmark = pytest.mark.anyio


def test_the_policy_names_the_host_only_when_it_is_safe_to_quote() -> None:
    policy = dict(security_headers("h.example:8000"))[b"content-security-policy"].decode()
    assert "script-src http://h.example:8000/static/ https://h.example:8000/static/;" in policy
    assert "frame-ancestors 'none'" in policy
    odd = dict(security_headers("h; script-src *"))[b"content-security-policy"].decode()
    assert "script-src 'self';" in odd and "*" not in odd


async def test_headers_are_added_unless_the_response_set_them() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    wrapped = with_headers(send, "h", "/api/workshops")
    await wrapped({"type": "http.response.start", "status": 200, "headers": [(b"x-frame-options", b"SAMEORIGIN")]})
    await wrapped({"type": "http.response.body", "body": b"{}"})
    headers = sent[0]["headers"]
    assert [v for k, v in headers if k == b"x-frame-options"] == [b"SAMEORIGIN"]
    assert (b"cache-control", b"no-store") in headers  # an API answer carries tokens
    assert sent[1] == {"type": "http.response.body", "body": b"{}"}
