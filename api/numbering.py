"""`seq` numbers for new jobs, handed out from blocks reserved in the store: one round trip
per block instead of one per group commit."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

LEASE_S = 1.0  # a block is used for at most this long
MOST = 1000  # numbers in one block at most


class SeqLease:
    """A block is used for at most `lease_s`, then what is left of it is given up (pages skip
    such gaps): the jobs of several API processes then stay in creation order to within
    about that long. Its size follows what the last block served: twice that when it ran
    out, as much when it expired, so an idle API reserves one number at a time and gives up
    almost nothing. Called by one group-commit worker at a time."""

    def __init__(
        self,
        reserve: Callable[[int], Awaitable[range]],
        *,
        now: Callable[[], float] = time.monotonic,
        lease_s: float = LEASE_S,
        most: int = MOST,
    ) -> None:
        self._reserve = reserve
        self._now = now
        self._lease_s = lease_s
        self._most = most
        self._left = range(0)
        self._expires = 0.0
        self._size = 1
        self._served = 0  # numbers taken from the current block

    async def take(self, count: int) -> range:
        expired = self._now() >= self._expires
        if expired or count > len(self._left):
            grown = self._served if expired else 2 * self._served
            self._size = max(1, min(self._most, grown))
            self._left = await self._reserve(max(count, self._size))
            self._expires = self._now() + self._lease_s
            self._served = 0
        taken, self._left = self._left[:count], self._left[count:]
        self._served += count
        return taken
