"""The HTTP rate limits (server/ratelimits.py): keyed token buckets and whom they count."""

from __future__ import annotations

import pytest

from vmv_sync.config import Settings
from vmv_sync.server.httperrors import RateLimited
from vmv_sync.server.ratelimits import Buckets, HttpLimits, client_key


def test_spent_and_refund_keep_a_key_whole() -> None:
    now = [0.0]
    b = Buckets(60, 2, "guesses", clock=lambda: now[0])
    assert not b.spent("a") and len(b) == 0  # asking does not make a bucket
    b.take("a")
    assert b.spent("a")
    b.refund("a")
    assert not b.spent("a")
    b.take("a")
    b.take("a")
    with pytest.raises(RateLimited, match="too many guesses") as info:
        b.take("a")
    assert info.value.retry_after == 1
    now[0] = 2.0
    assert not b.spent("a")  # both tokens came back


def test_full_buckets_go_first_when_the_keys_overflow() -> None:
    now = [0.0]
    b = Buckets(60, 1, "x", max_keys=2, clock=lambda: now[0])
    b.take("early")
    now[0] = 0.5
    b.take("late")
    now[0] = 1.2  # "early" has refilled, "late" has not
    b.take("new")
    assert "late" in b._buckets and "early" not in b._buckets


def test_limits_from_settings_and_client_keys() -> None:
    limits = HttpLimits(Settings(), clock=lambda: 0.0)
    assert {limits.create.what, limits.join.what} == {
        "workshops created from your address", "join attempts from your address",
    }  # fmt: skip
    assert client_key({"client": ("::1", 5000)}) == client_key({"client": ("0:0:0:0:0:0:0:1", 1)}) == "::1"
    assert client_key({"client": ("::ffff:10.0.0.7", 1)}) == "10.0.0.7"
    assert client_key({"client": ("2001:db8::1", 1)}) == client_key({"client": ("2001:db8::2", 1)})
    assert client_key({}) == "unknown"
