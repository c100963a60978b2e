"""Live job counts: one query per burst of changes, shared by every subscriber.

Counting is an aggregation over the read model, so it is not done per subscriber or per
change. After a change, and only while someone listens, the counts are computed once, at
most every `interval`, and each subscriber is woken to read the latest value. A subscriber
that reads slowly skips values in between (counts only matter as they are now); it never
holds anyone else up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from pymongo.errors import PyMongoError

from runtime.aio import raise_if_cancelled

log = logging.getLogger(__name__)
Counts = dict[str, int]
RETRY_S = 1.0


class LiveCounts:
    def __init__(self, compute: Callable[[], Awaitable[Counts]], interval: float = 0.25) -> None:
        self._compute = compute
        self._interval = interval
        self._changed = asyncio.Event()
        self._published = asyncio.Condition()
        self._generation = 0
        self._latest: Counts = {}
        self._listeners = 0

    def changed(self) -> None:
        """Something in the read model changed (or may have: the feed reconnected)."""
        self._changed.set()

    async def run(self) -> None:
        while True:
            raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
            await self._changed.wait()
            self._changed.clear()
            if self._listeners:
                try:
                    counts = await self._compute()
                except PyMongoError as error:
                    raise_if_cancelled()  # (see runtime.aio.retried)
                    log.warning("counting jobs failed; retrying", extra={"error": repr(error)})
                    self._changed.set()
                    await asyncio.sleep(RETRY_S)
                    continue
                async with self._published:
                    self._latest = counts
                    self._generation += 1
                    self._published.notify_all()
            await asyncio.sleep(self._interval)

    async def subscribe(self) -> AsyncIterator[Counts]:
        """The counts now, then after every change (coalesced)."""
        self._listeners += 1
        try:
            seen = self._generation
            yield await self._compute()
            while True:
                async with self._published:
                    while self._generation == seen:
                        await self._published.wait()
                    seen, counts = self._generation, self._latest
                yield counts
        finally:
            self._listeners -= 1
