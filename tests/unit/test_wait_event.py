"""`runtime.aio.wait_event`: a task cancelled just as the event it waits for is set still
ends (asyncio.wait_for on Python 3.11 swallows that cancellation, CPython gh-86296, and a
loop around it never ends: a fetcher that hung its own shutdown)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from runtime.aio import wait_event


async def _loop_forever(wait: object, event: asyncio.Event) -> None:
    while True:  # as the fetcher's idle loops are written
        event.clear()
        await wait(event)  # type: ignore[operator]


async def _cancelled_as_set(wait: object) -> bool:
    """Whether the looping task ended when cancelled in the same moment its event was set."""
    event = asyncio.Event()
    task = asyncio.create_task(_loop_forever(wait, event))
    await asyncio.sleep(0.01)  # it waits
    event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.5)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return bool(done)


async def test_a_cancelled_wait_ends_even_as_the_event_is_set() -> None:
    assert await _cancelled_as_set(lambda e: wait_event(e, 10))


async def test_the_wait_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert not await wait_event(event, 0.01)
    event.set()
    assert await wait_event(event, 0.01)


@pytest.mark.skipif(
    not hasattr(asyncio, "timeout") or __import__("sys").version_info >= (3, 12),
    reason="the race is asyncio.wait_for's on Python 3.11",
)
async def test_the_race_is_real_with_wait_for() -> None:
    async def wait_for(event: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 10)

    assert not await _cancelled_as_set(wait_for)
