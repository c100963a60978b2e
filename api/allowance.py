"""Whether due jobs wait for Unsplash's allowance, and until when, for both faces to show.

The fetchers keep one account of the allowance in the store (processors/fetcher/quota.py);
while its budget is spent, a job that fell due stays `processing` until the window ends.
This reads that account (at most once a second per API process) and says when the next
request may go. It only informs: a store that cannot be read makes it say nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from datetime import datetime

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from processors.fetcher.quota import read_account, waiting_until
from runtime.clock import utc_now
from runtime.settings import Settings
from runtime.store import Document

log = logging.getLogger(__name__)

FRESH_S = 1.0


class Allowance:
    def __init__(self, collection: AsyncCollection[Document], settings: Settings) -> None:
        self._collection = collection
        self._window_s = settings.unsplash_window_s
        self._reserve = settings.unsplash_ratelimit_reserve
        self._read_at = -FRESH_S
        self._until: datetime | None = None

    def known(self) -> datetime | Awaitable[datetime | None] | None:
        """`waiting_until()` without waiting when the account read last is fresh (a
        subscription shown to many is then executed without a pause)."""
        if time.monotonic() - self._read_at >= FRESH_S:
            return self.waiting_until()
        return self._current()

    async def waiting_until(self) -> datetime | None:
        """When due jobs may be fetched again, while the allowance is spent; else None."""
        if time.monotonic() - self._read_at >= FRESH_S:
            self._read_at = time.monotonic()
            try:
                account = await read_account(self._collection)
            except PyMongoError as error:
                log.warning("Unsplash allowance unknown", extra={"error": repr(error)})
                account = None
            self._until = (
                None
                if account is None
                else waiting_until(account, utc_now(), self._window_s, self._reserve)
            )
        return self._current()

    def _current(self) -> datetime | None:
        return self._until if self._until is not None and self._until > utc_now() else None
