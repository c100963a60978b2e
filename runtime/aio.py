"""asyncio helpers for clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
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


async def cancel_all(*tasks: asyncio.Future[Any]) -> None:
    """Cancel the tasks and wait until every one has finished."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
