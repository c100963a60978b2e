"""Background writers on a slow store: smaller writes and longer pauses after failures."""

from __future__ import annotations

import logging

import pytest
from pymongo.errors import NetworkTimeout, PyMongoError

from runtime.backoff import Backoff, ChunkSize, Retry, write_chunked


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


async def test_a_write_too_big_for_a_slow_store_is_retried_smaller() -> None:
    """A store that times out on writes of more than 30 operations. Retried at the same size,
    a writer would time out for ever; retried from the start, it would write the same
    operations again and again."""
    written: list[range] = []

    async def write(start: int, end: int) -> None:
        if end - start > 30:
            raise NetworkTimeout("timed out")
        written.append(range(start, end))

    failures: list[str] = []

    class Recorded(Retry):
        async def failed(self, error: PyMongoError, chunk: ChunkSize) -> None:
            failures.append(str(error))

    await write_chunked(1000, ChunkSize(500), write, Recorded(logging.getLogger(__name__), "x"))
    # 500, 250, 125, 62 and 31 operations: each over 30; then a probe at twice the size
    # after every streak of 4 successful writes (of at least 15) fails again.
    assert failures[:5] == ["timed out"] * 5
    assert len(failures) <= 5 + 1000 // (4 * 15)
    assert [i for chunk in written for i in chunk] == list(range(1000))  # each once, in order
    with pytest.raises(NetworkTimeout):
        await write_chunked(1000, ChunkSize(500), write)
