"""Group commit: concurrent requests made durable together, each answered when its batch is.

Requests wait in a bounded queue; one worker takes everything queued (up to `max_batch`) and
commits it as one batch, while the next batch gathers behind it. Under light load a batch is
one request and adds no wait; under heavy load each batch holds what arrived during the
previous commit, so the store and the log see a few large writes instead of many small ones.
A full queue refuses at once (`Saturated`: the caller answers 503 with Retry-After) rather
than let waits grow without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Saturated(Exception):
    """More requests are waiting than can be committed promptly: retry shortly."""


#: Commits a batch; returns, per request and in order, its result or the exception that
#: request alone gets. Raising fails every request of the batch with that exception.
Commit = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, commit: Commit[T, R], *, max_batch: int, max_queued: int) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self.max_queued = max_queued
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._arrived = asyncio.Event()
        self.batches = 0
        self.committed = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Queue `item`; return its result once its batch is committed."""
        if len(self._queue) >= self.max_queued:
            raise Saturated(f"{len(self._queue)} requests are already waiting")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._arrived.set()
        return await future

    async def run(self) -> None:
        """Commit batches until cancelled; whatever is queued then fails with CancelledError."""
        try:
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                while self._queue:
                    size = min(len(self._queue), self.max_batch)
                    await self._one([self._queue.popleft() for _ in range(size)])
        finally:
            while self._queue:
                _, future = self._queue.popleft()
                future.cancel()

    async def _one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._commit(items)
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        self.batches += 1
        self.committed += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller went away; the commit stands
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
