"""Whether due jobs wait for Unsplash's allowance, and until when, for both faces to show.

The fetchers keep one account of the allowance in the store (processors/fetcher/quota.py);
while its budget is spent, a job that fell due stays `processing` until the window ends.
This reads that account (at most once a second per API process) and says when the next
request may go. It only informs: a store that cannot be read makes it say nothing.
"""

from __future__ import annotations

import asyncio
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
        self._reading: asyncio.Future[datetime | None] | None = None

    def known(self) -> datetime | Awaitable[datetime | None] | None:
        """`waiting_until()` without waiting, as the account read last says: when that read
        is not fresh, the next one starts in the background (only the first answer waits
        for a read). A change pushed to a thousand subscribers is then executed without a
        pause, and so written to them at once (api/wire.py)."""
        if self._read_at < 0:
            return self.waiting_until()
        if time.monotonic() - self._read_at >= FRESH_S and self._reading is None:
            self._reading = asyncio.ensure_future(self.waiting_until())
            self._reading.add_done_callback(self._read)
        return self._current()

    def _read(self, reading: asyncio.Future[datetime | None]) -> None:
        self._reading = None
        if not reading.cancelled() and reading.exception() is not None:
            log.warning("Unsplash allowance unknown", exc_info=reading.exception())

    async def close(self) -> None:
        """Stop a read under way (the store is closing)."""
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

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
