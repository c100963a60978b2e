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

from runtime.aio import raise_if_cancelled

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Saturated(Exception):
    """More requests are waiting than can be committed promptly: retry shortly."""


#: Commits a batch; returns, per request and in order, its result or the exception that
#: request alone gets. Raising fails every request of the batch with that exception.
Commit = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class GroupCommit(Generic[T, R]):
    """`max_batch` and `max_queued` count the weight of requests (1 each, unless `weight`
    says otherwise: a request creating 20 jobs weighs 20)."""

    def __init__(
        self,
        commit: Commit[T, R],
        *,
        max_batch: int,
        max_queued: int,
        weight: Callable[[T], int] = lambda _: 1,
    ) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self.max_queued = max_queued
        self._weight = weight
        self._queue: deque[tuple[T, int, asyncio.Future[R]]] = deque()
        self._queued = 0
        self._arrived = asyncio.Event()
        self.batches = 0
        self.committed = 0

    @property
    def queued(self) -> int:
        """The weight waiting for a batch."""
        return self._queued

    async def submit(self, item: T) -> R:
        """Queue `item`; return its result once its batch is committed."""
        weight = self._weight(item)
        if self._queue and self._queued + weight > self.max_queued:
            raise Saturated(f"{self._queued} are already waiting (at most {self.max_queued})")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, weight, future))
        self._queued += weight
        self._arrived.set()
        return await future

    async def run(self) -> None:
        """Commit batches until cancelled; whatever is queued then fails with CancelledError."""
        try:
            while True:
                raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
                await self._arrived.wait()
                self._arrived.clear()
                while self._queue:
                    await self._one(self._take())
        finally:
            while self._queue:
                *_, future = self._queue.popleft()
                future.cancel()
            self._queued = 0

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next batch: queued requests up to `max_batch` of weight (at least one)."""
        batch: list[tuple[T, asyncio.Future[R]]] = []
        total = 0
        while self._queue and (not batch or total + self._queue[0][1] <= self.max_batch):
            item, weight, future = self._queue.popleft()
            self._queued -= weight
            total += weight
            batch.append((item, future))
        return batch

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
