"""The per-client creation limit: a token bucket per address, on a fake clock."""

from __future__ import annotations

import pytest

from api.errors import InvalidInput
from api.ratelimit import CreationLimit, RateLimited


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_then_the_rate_and_a_refusal_says_when_to_come_back() -> None:
    clock = Clock()
    limit = CreationLimit(rate_per_s=2, burst=10, now=clock)
    limit.take("a", 10)  # the whole burst at once
    with pytest.raises(RateLimited) as refused:
        limit.take("a", 3)
    assert refused.value.retry_after_s == 2  # 3 tokens at 2 a second
    assert refused.value.status_code == 429
    limit.take("b", 10)  # another address has its own bucket
    clock.t = 1.5
    limit.take("a", 3)  # refilled; the refusal took nothing
    with pytest.raises(RateLimited):
        limit.take("a", 1)
    clock.t = 100
    limit.take("a", 10)  # never more than the burst
    with pytest.raises(RateLimited):
        limit.take("a", 1)


def test_a_batch_over_the_burst_can_never_pass_and_zero_means_no_limit() -> None:
    with pytest.raises(InvalidInput, match="at most 5 jobs at once"):
        CreationLimit(rate_per_s=1, burst=5).take("a", 6)
    off = CreationLimit(rate_per_s=0, burst=1)
    for _ in range(1000):
        off.take("a", 100)


def test_forgotten_clients_start_full_and_memory_stays_bounded() -> None:
    limit = CreationLimit(rate_per_s=1, burst=1, now=Clock(), max_clients=3)
    for client in "abcd":
        limit.take(client, 1)
    assert len(limit._buckets) == 3
    limit.take("a", 1)  # forgotten: full again
    with pytest.raises(RateLimited):
        limit.take("d", 1)
