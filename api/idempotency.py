"""Idempotency keys: the first request with a key decides the job; retries get that job."""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from runtime.clock import utc_now
from runtime.store import Document
from schema import JobRequested, decode, encode


class IdempotencyKeys:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def claim(self, key: str, event: JobRequested) -> JobRequested:
        """Store `event` under `key` unless the key has one already; return the one stored.

        The event is stored before it is published, so a retry after a crash between the two
        publishes the very same event (same ids) instead of creating a second job."""
        doc = {"_id": key, "event": encode(event).decode(), "at": utc_now()}
        try:
            await self._collection.insert_one(doc)
        except DuplicateKeyError:
            found = await self._collection.find_one({"_id": key})
            assert found is not None
            stored = decode(found["event"].encode())
            assert isinstance(stored, JobRequested)
            return stored
        return event
