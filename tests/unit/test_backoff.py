"""Background writers on a slow store: smaller writes and longer pauses after failures."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pymongo.errors import NetworkTimeout, PyMongoError

from projections.jobs.store import MongoJobViews
from runtime.backoff import Backoff, ChunkSize, Retry
from runtime.clock import utc_now
from tests.unit.events import job_life


def test_chunks_halve_on_failure_and_grow_back() -> None:
    chunk = ChunkSize(100)
    sizes = []
    for _ in range(8):
        chunk.failed()
        sizes.append(chunk.size)
    assert sizes == [50, 25, 12, 6, 3, 1, 1, 1]
    grown = []
    for _ in range(7 * 4):
        chunk.succeeded()
        grown.append(chunk.size)
    assert grown[3::4] == [2, 4, 8, 16, 32, 64, 100]
    assert grown[:3] == [1, 1, 1]
    with pytest.raises(ValueError, match="at least one"):
        ChunkSize(0)


async def test_pauses_double_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("runtime.backoff.asyncio.sleep", sleep)
    backoff = Backoff(first=0.5, most=3)
    for _ in range(5):
        await backoff.pause()
    backoff.reset()
    await backoff.pause()
    assert slept == [0.5, 1, 2, 3, 3, 0.5]


class SlowStore:
    """A collection whose bulk writes of more than `limit` ops time out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.written: list[int] = []

    async def bulk_write(self, ops: list[Any], ordered: bool) -> None:
        if len(ops) > self.limit:
            raise NetworkTimeout("timed out")
        self.written.append(len(ops))


async def test_a_write_too_big_for_a_slow_store_is_retried_smaller() -> None:
    """Retried at the same size, the projection would time out for ever; retried from the
    start, it would write the same ops again and again."""
    store = SlowStore(limit=30)
    views = MongoJobViews(store)  # type: ignore[arg-type]
    events = [job_life(f"j{i}", utc_now())[0] for i in range(1000)]
    failures: list[str] = []

    class Recorded(Retry):
        async def failed(self, error: PyMongoError, chunk: ChunkSize) -> None:
            failures.append(str(error))

    await views.apply(events, Recorded(logging.getLogger(__name__), "retrying"))
    # 500, 250, 125, 62 and 31 ops: each over 30; then a probe at twice the size after
    # every streak of 4 successful writes (of at least 15 ops) fails again.
    assert failures[:5] == ["timed out"] * 5
    assert len(failures) <= 5 + 1000 // (4 * 15)
    assert sum(store.written) == 1000  # each op written once
    assert max(store.written) <= 30
    with pytest.raises(NetworkTimeout):
        await MongoJobViews(store).apply(events)  # type: ignore[arg-type]
