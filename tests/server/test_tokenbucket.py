"""The one token bucket (server/tokenbucket.py), with the time given as an argument."""

from __future__ import annotations

from vmv_sync.server.tokenbucket import TokenBucket


def test_take_refills_at_the_rate_and_never_past_the_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]  # the 4th is 1 token short
    assert bucket.take(0.25) == 0.5  # half a token back: still short, and nothing taken
    assert bucket.take(0.5) == 0.0
    assert bucket.level(100.0) == 3.0 and bucket.tokens == 0.0  # level() leaves the bucket as it is


def test_a_cost_larger_than_one_and_giving_back() -> None:
    bucket = TokenBucket(rate=10.0, burst=100, now=0.0)
    assert bucket.take(0.0, cost=60) == 0.0
    assert bucket.take(0.0, cost=60) == 20.0
    bucket.give_back(0.0, cost=60)
    assert bucket.refill(0.0) == 100.0  # never past the burst
    bucket.give_back(1.0)
    assert bucket.tokens == 100.0


def test_charge_may_run_the_balance_negative() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    bucket.charge(0.0, 5.0)
    assert bucket.refill(0.0) == -3.0
    assert bucket.take(2.0) == 2.0  # -1 after two seconds: two tokens short of one
    assert bucket.refill(4.0) == 1.0
