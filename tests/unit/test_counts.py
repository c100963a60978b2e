"""Live counts: one computation per burst of changes, shared by every subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pymongo.errors import PyMongoError

from api.counts import Counts, LiveCounts
from runtime.aio import cancel_all
from tests.conftest import eventually


class Store:
    """Stands in for the read model's aggregation: counts every call, can fail once."""

    def __init__(self) -> None:
        self.value = 0
        self.calls = 0
        self.fail_next = False

    async def counts(self) -> Counts:
        self.calls += 1
        await asyncio.sleep(0.001)
        if self.fail_next:
            self.fail_next = False
            raise PyMongoError("store away")
        return {"resolved": self.value}


async def _last_seen(stream: AsyncIterator[Counts], wanted: int, into: list[Counts]) -> None:
    async for counts in stream:
        into.append(counts)
        if counts["resolved"] == wanted:
            return


async def test_a_burst_of_changes_is_counted_once_for_all_subscribers() -> None:
    store = Store()
    live = LiveCounts(store.counts, interval=0.05)
    runner = asyncio.create_task(live.run())
    seen: list[list[Counts]] = [[] for _ in range(20)]
    readers = [asyncio.create_task(_last_seen(live.subscribe(), 100, s)) for s in seen]
    await eventually(lambda: all(seen), "every subscriber's first counts")  # (not a pause)
    assert all(s == [{"resolved": 0}] for s in seen)  # each starts with the counts now
    first = store.calls
    for _ in range(100):
        store.value += 1
        live.changed()
    async with asyncio.timeout(5):
        await asyncio.gather(*readers)
    await cancel_all(runner)
    assert first == 20
    assert store.calls - first <= 3, "counted per change or per subscriber"
    assert all(s[-1] == {"resolved": 100} for s in seen)


async def test_nothing_is_counted_while_nobody_listens() -> None:
    store = Store()
    live = LiveCounts(store.counts, interval=0.01)
    runner = asyncio.create_task(live.run())
    for _ in range(10):
        live.changed()
        await asyncio.sleep(0.01)
    await cancel_all(runner)
    assert store.calls == 0


async def test_a_failed_count_is_retried() -> None:
    store = Store()
    live = LiveCounts(store.counts, interval=0.01)
    runner = asyncio.create_task(live.run())
    seen: list[Counts] = []
    reader = asyncio.create_task(_last_seen(live.subscribe(), 1, seen))
    await eventually(lambda: bool(seen), "the first counts")
    store.value, store.fail_next = 1, True
    live.changed()
    async with asyncio.timeout(5):
        await reader
    await cancel_all(runner)
    assert seen == [{"resolved": 0}, {"resolved": 1}]
