"""Group commit, as pure logic: batching, per-request results, batch failures, saturation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runtime.groupcommit import GroupCommit, Saturated


class Recorder:
    """Commits by recording each batch; waits on `gate` so tests can pile requests up."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def commit(self, batch: list[int]) -> list[int | Exception]:
        self.batches.append(batch)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in batch]


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, GroupCommit[int, int]]]:
    recorder = Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder.commit, max_batch=4, max_queued=6)
    worker = asyncio.create_task(group.run())
    yield recorder, group
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


async def test_requests_that_arrive_during_a_commit_share_the_next_batch(
    recorder: tuple[Recorder, GroupCommit[int, int]],
) -> None:
    commits, group = recorder
    commits.gate.clear()
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)  # the worker takes [0] and waits in its commit
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(n)) for n in (2, 4, 6, 8, 10)]
    await asyncio.sleep(0)
    commits.gate.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [20, 40, 60, 80, 100]
    assert commits.batches == [[0], [2, 4, 6, 8], [10]]  # at most max_batch per commit
    assert (group.batches, group.committed) == (3, 6)


async def test_a_request_can_fail_alone(recorder: tuple[Recorder, GroupCommit[int, int]]) -> None:
    _, group = recorder
    results = await asyncio.gather(*(group.submit(n) for n in (2, 3)), return_exceptions=True)
    assert results[0] == 20
    assert isinstance(results[1], ValueError)


async def test_a_failed_commit_fails_its_batch_and_only_its_batch(
    recorder: tuple[Recorder, GroupCommit[int, int]],
) -> None:
    commits, group = recorder
    commits.gate.clear()
    commits.fail = ConnectionError("broker away")
    doomed = [asyncio.create_task(group.submit(n)) for n in (0, 2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    commits.gate.set()
    results = await asyncio.gather(*doomed, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    commits.fail = None
    assert await group.submit(4) == 40


async def test_a_full_queue_refuses_at_once(
    recorder: tuple[Recorder, GroupCommit[int, int]],
) -> None:
    commits, group = recorder
    commits.gate.clear()
    waiting = [asyncio.create_task(group.submit(0))]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # [0] is being committed; the queue is empty again
    waiting += [asyncio.create_task(group.submit(2)) for _ in range(6)]
    await asyncio.sleep(0)
    assert group.queued == 6
    with pytest.raises(Saturated, match="6 are already waiting"):
        await group.submit(2)
    commits.gate.set()
    assert await asyncio.gather(*waiting) == [0] + [20] * 6


async def test_a_stopped_worker_leaves_no_caller_waiting() -> None:
    commits = Recorder()
    commits.gate.clear()
    group: GroupCommit[int, int] = GroupCommit(commits.commit, max_batch=1, max_queued=10)
    worker = asyncio.create_task(group.run())
    callers = [asyncio.create_task(group.submit(n)) for n in (0, 2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)


async def test_batches_and_the_queue_count_weight() -> None:
    """A request creating n jobs weighs n: batches hold at most max_batch of weight (a heavier
    request still goes, alone), and the queue refuses what would take it over max_queued."""
    commits = Recorder()
    commits.gate.clear()
    group: GroupCommit[int, int] = GroupCommit(
        commits.commit, max_batch=10, max_queued=22, weight=lambda n: n
    )
    worker = asyncio.create_task(group.run())
    try:
        first = asyncio.create_task(group.submit(2))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # [2] is being committed
        waiting = [asyncio.create_task(group.submit(n)) for n in (4, 6, 12)]
        await asyncio.sleep(0)
        assert group.queued == 22
        with pytest.raises(Saturated, match="22 are already waiting"):
            await group.submit(2)
        commits.gate.set()
        assert await asyncio.gather(first, *waiting) == [20, 40, 60, 120]
        assert commits.batches == [[2], [4, 6], [12]]
        assert group.queued == 0
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
