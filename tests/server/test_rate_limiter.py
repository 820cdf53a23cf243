"""In-process tests of the per-connection limits: :class:`RateLimiter` (4429) and ``check_size`` (4413).

Time: the limiter reads ``time.monotonic`` through its module's ``time`` reference,
which the ``clock`` fixture replaces with a settable fake.
"""

from __future__ import annotations

import types

import pytest

from vmv_sync.errors import MessageTooLarge, TooManyMessages
from vmv_sync.server import limits
from vmv_sync.server.limits import RateLimiter, check_size


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(limits, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def hits(limiter: RateLimiter, cost: float = 1.0, what: str = "messages") -> int:
    """How many hits of ``cost`` pass before the first refusal (at most 10,000)."""
    for n in range(10_000):
        try:
            limiter.hit(cost, what)
        except TooManyMessages:
            return n
    return 10_000


def test_a_burst_passes_then_the_next_message_is_refused(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10, burst=5)
    for _ in range(5):
        limiter.hit()
    with pytest.raises(TooManyMessages) as refused:
        limiter.hit()
    assert refused.value.code == 4429
    assert "10 messages per second" in refused.value.reason


def test_tokens_refill_at_the_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10, burst=5)
    assert hits(limiter) == 5
    clock.advance(0.05)  # half a token
    assert hits(limiter) == 0
    clock.advance(0.05)  # the refused hit took nothing: now one whole token
    assert hits(limiter) == 1
    clock.advance(0.3)
    assert hits(limiter) == 3


def test_refill_is_capped_at_the_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=10, burst=5)
    assert hits(limiter) == 5
    clock.advance(3600)
    assert hits(limiter) == 5


def test_a_steady_sender_at_the_rate_is_never_refused(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=64, burst=1)
    for _ in range(1000):
        clock.advance(1 / 64)  # exact in binary: no rounding below one token
        limiter.hit()


def test_byte_cost(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=1000, burst=4000)
    limiter.hit(3000, "bytes")
    with pytest.raises(TooManyMessages) as refused:
        limiter.hit(1500, "bytes")
    assert "1000 bytes per second" in refused.value.reason
    limiter.hit(1000, "bytes")  # what is left still passes
    clock.advance(1.5)
    limiter.hit(1500, "bytes")
    assert hits(limiter, 1, "bytes") == 0


def test_a_cost_over_the_burst_never_passes(clock: FakeClock) -> None:
    # why the endpoint sizes the byte bucket at max(rate_bytes_burst, max_message_size)
    limiter = RateLimiter(rate=1000, burst=100)
    clock.advance(3600)
    with pytest.raises(TooManyMessages):
        limiter.hit(101, "bytes")
    limiter.hit(100, "bytes")


def test_check_size() -> None:
    check_size(b"x" * 10, 10)
    check_size("x" * 10, 10)
    for frame in (b"x" * 11, "x" * 11):
        with pytest.raises(MessageTooLarge) as refused:
            check_size(frame, 10)
        assert refused.value.code == 4413
        assert "11 bytes" in refused.value.reason
