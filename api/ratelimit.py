"""A per-client limit on job creation: a token bucket per client address.

Each client may create `burst` jobs at once, refilled at `rate` jobs a second; a batch takes
one token per job. Over it, the request is refused with how long to wait (429 with
`Retry-After` on REST, a `RateLimitedError` on GraphQL): none of its jobs is created. Pure:
the clock is passed in. The buckets of the least recently seen clients are forgotten beyond
`max_clients` (a forgotten client starts full: the limit bounds a busy client, not memory).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from api.errors import CallerError, InvalidInput


class RateLimited(CallerError):
    """Too many jobs created by this client lately: retry after `retry_after_s`."""

    status_code = 429
    code = "RATE_LIMITED"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many jobs created from this address; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class CreationLimit:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        now: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        """`rate_per_s` 0: no limit."""
        self.rate = rate_per_s
        self.burst = burst
        self._now = now
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, client: str, jobs: int) -> None:
        """Take `jobs` tokens from the client's bucket, or raise RateLimited (taking none)."""
        if self.rate <= 0:
            return
        if jobs > self.burst:
            raise InvalidInput(f"at most {self.burst} jobs at once from one address")
        now = self._now()
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < jobs:
            self._keep(client, tokens, now)
            raise RateLimited(max(1, math.ceil((jobs - tokens) / self.rate)))
        self._keep(client, tokens - jobs, now)

    def _keep(self, client: str, tokens: float, at: float) -> None:
        self._buckets[client] = (tokens, at)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
