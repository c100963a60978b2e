"""How background writers live with a slow or failing store: smaller writes, longer pauses.

A bulk write that times out is retried; retried at the same size, one too big to ever finish
within the store's timeout would stall its writer for good. So each failure halves the size
of the next write and doubles the pause before it; a run of successes grows the size back.
Writers retry the failed chunk, not what they had already written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pymongo.errors import PyMongoError

from runtime.aio import raise_if_cancelled


class Backoff:
    """The pause before the next retry: `first`, doubling per failure, at most `most`."""

    def __init__(self, first: float = 0.5, most: float = 10.0) -> None:
        self.first = first
        self.most = most
        self.delay = first

    async def pause(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.most, self.delay * 2)

    def reset(self) -> None:
        self.delay = self.first


class ChunkSize:
    """The size of the next bulk write: between 1 and `most`, halved by a failure and
    doubled by every `streak` successes in a row (so it does not swing straight back to
    the size that just failed)."""

    def __init__(self, most: int, streak: int = 4) -> None:
        if most < 1:
            raise ValueError("a chunk holds at least one operation")
        self.most = most
        self.size = most
        self.streak = streak
        self._successes = 0

    def failed(self) -> None:
        self.size = max(1, self.size // 2)
        self._successes = 0

    def succeeded(self) -> None:
        self._successes += 1
        if self._successes >= self.streak:
            self.size = min(self.most, self.size * 2)
            self._successes = 0


class Retry:
    """What a background writer does about a failed write: log it, pause (longer after each
    failure in a row), and try again."""

    def __init__(self, logger: logging.Logger, message: str, backoff: Backoff | None = None):
        self._log = logger
        self._message = message
        self.backoff = backoff or Backoff()

    async def failed(self, error: PyMongoError, chunk: ChunkSize) -> None:
        raise_if_cancelled()  # (see runtime.aio.retried)
        self._log.warning(
            self._message,
            extra={"error": repr(error), "retry_in_s": self.backoff.delay, "next_ops": chunk.size},
        )
        await self.backoff.pause()

    def succeeded(self) -> None:
        self.backoff.reset()


async def write_chunked(
    count: int,
    chunk: ChunkSize,
    write: Callable[[int, int], Awaitable[None]],
    retry: Retry | None = None,
) -> None:
    """Write operations [0, count) as `write(start, end)` calls of at most `chunk.size`.

    A failed write (a PyMongoError that `write` lets through) shrinks the chunks. Without
    `retry` it is raised; with it, the failed chunk alone is written again, smaller, after a
    pause, until the store takes it: `write` must be idempotent."""
    start = 0
    while start < count:
        end = min(count, start + chunk.size)
        try:
            await write(start, end)
        except PyMongoError as error:
            chunk.failed()
            if retry is None:
                raise
            await retry.failed(error, chunk)
            continue
        chunk.succeeded()
        if retry is not None:
            retry.succeeded()
        start = end
