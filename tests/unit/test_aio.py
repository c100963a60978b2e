"""`shielded`, `raise_if_cancelled`, `retried`: a cancellation a library swallows stays."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from runtime.aio import raise_if_cancelled, retried, shielded


async def background_work() -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0.1)  # winding down takes a moment, as a client's sync task does
        raise


async def close_like_aiokafka(inner: asyncio.Task[None], closed: list[bool]) -> None:
    inner.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # what aiokafka's close() does
        await inner
    await asyncio.sleep(0.05)
    closed.append(True)


async def stop(inner: asyncio.Task[None], closed: list[bool], guard: bool) -> str:
    step = close_like_aiokafka(inner, closed)
    await (shielded(step) if guard else step)
    return "carried on after the cancellation"


@pytest.mark.parametrize("guard", [False, True])
async def test_a_cancellation_during_clean_up_is_not_swallowed(guard: bool) -> None:
    closed: list[bool] = []
    inner = asyncio.create_task(background_work())
    outer = asyncio.create_task(stop(inner, closed, guard))
    await asyncio.sleep(0.01)
    outer.cancel()
    result = await asyncio.gather(outer, return_exceptions=True)
    if guard:
        assert isinstance(result[0], asyncio.CancelledError)
        assert closed == [True]  # and the clean-up still ran to its end
    else:  # the hazard the guard exists for
        assert result[0] == "carried on after the cancellation"


async def test_a_loop_raises_a_cancellation_its_library_swallowed() -> None:
    rounds = 0

    async def fetch_like_aiokafka() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # the cancellation is lost here
            await asyncio.sleep(0.01)

    async def processor_loop() -> None:
        nonlocal rounds
        while True:
            raise_if_cancelled()
            rounds += 1
            await fetch_like_aiokafka()

    task = asyncio.create_task(processor_loop())
    await asyncio.sleep(0.05)
    task.cancel()
    async with asyncio.timeout(2):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert rounds > 1


class StoreAway(Exception):
    pass


@pytest.mark.parametrize("guarded", [True, False])
async def test_a_retry_loop_ends_when_the_failing_call_swallowed_the_cancellation(
    guarded: bool,
) -> None:
    """What PyMongo's server selection does with a dead store: the cancellation is lost in
    its wait, and it raises its own error when that wait ends. `retried` stops there; a
    plain retry loop goes on for ever."""
    log = logging.getLogger("test")

    selecting = asyncio.Event()

    async def select_a_server_like_pymongo() -> None:
        selecting.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)
        raise StoreAway("no server")

    ended = False

    async def plain_loop() -> None:
        while not ended:  # (only so that the test can end it)
            try:
                await select_a_server_like_pymongo()
            except StoreAway:
                await asyncio.sleep(0.01)
            else:
                return

    task = asyncio.create_task(
        retried(select_a_server_like_pymongo, (StoreAway,), log=log, message="x", pause_s=0.01)
        if guarded
        else plain_loop()
    )
    await asyncio.sleep(0.1)
    selecting.clear()
    await selecting.wait()
    task.cancel()  # while it waits for a server
    try:
        done, _ = await asyncio.wait({task}, timeout=1)
        if guarded:
            assert task in done
            assert task.cancelled()
        else:
            assert not done  # the hazard: it goes on
    finally:
        ended = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
