"""asyncio helpers for clean shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def shielded(awaitable: Awaitable[T]) -> T:
    """Run a clean-up step to its end even if our task is cancelled meanwhile, then let the
    cancellation go on.

    Needed around aiokafka's stop/close: they wait for an inner task under
    `suppress(CancelledError)`, which swallows a cancellation aimed at *our* task, so a
    cancelled processor would carry on as if nothing happened (and never stop)."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def raise_if_cancelled() -> None:
    """Raise the cancellation our task was asked for, if a library swallowed it.

    aiokafka catches CancelledError in places (see `shielded`), and PyMongo waits with
    `asyncio.wait_for`, which on Python 3.11 loses a cancellation that arrives as its wait
    ends (CPython gh-86296); when that happens in a call a loop makes over and over, the
    loop goes on for ever (or waits for ever) although its task is being cancelled. Every
    long-lived loop that calls such a library checks this each time round."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_all(*tasks: asyncio.Future[Any]) -> None:
    """Cancel the tasks and wait until every one has finished."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` pass; whether it was set. Not
    `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives as the event
    is set (CPython gh-86296), and a task looping on it then never ends when cancelled."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def retried(
    step: Callable[[], Awaitable[T]],
    errors: tuple[type[Exception], ...],
    *,
    log: logging.Logger,
    message: str,
    pause_s: float,
    fields: dict[str, object] | None = None,
) -> T:
    """`step()`'s result, tried again after a logged pause for as long as it fails with one
    of `errors` (the store or the broker away: what waits on it waits for it to return).

    Cancelling our task ends it, even when the failing library swallowed the cancellation:
    PyMongo waits for a server with `asyncio.wait_for` (CPython gh-86296), goes on waiting
    and then raises its own timeout error, and a loop that retried that for ever kept a
    store-killed `jobline run` from exiting."""
    while True:
        try:
            done = await step()
        except errors as error:
            raise_if_cancelled()
            log.warning(message, extra={**(fields or {}), "error": repr(error)})
            await asyncio.sleep(pause_s)
        else:
            raise_if_cancelled()  # (it may have swallowed the cancellation and succeeded)
            return done
