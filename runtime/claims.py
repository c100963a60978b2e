"""First-writer-wins claims of an event, in the store.

Used twice: an idempotency key claims the JobRequested it creates, and the fetcher claims a
job's outcome. The claim is stored before the event is published, so whoever comes second
(a retry, a racing instance, a restart after a crash) publishes the stored event, never a new
one, and only if the first did not get to mark it published.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from runtime.clock import utc_now
from runtime.store import Document
from schema import Event, decode, encode


@dataclass(frozen=True, slots=True)
class Claim:
    event: Event
    published: bool
    fingerprint: str | None


class ClaimStore:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def find(self, key: str) -> Claim | None:
        doc = await self._collection.find_one({"_id": key})
        return None if doc is None else _claim(doc)

    async def claim(self, key: str, event: Event, fingerprint: str | None = None) -> Claim:
        """Store `event` under `key` unless something is stored there; return what is."""
        doc = {
            "_id": key,
            "event": encode(event).decode(),
            "fingerprint": fingerprint,
            "published": False,
            "claimed_at": utc_now(),
        }
        try:
            await self._collection.insert_one(doc)
        except DuplicateKeyError:
            found = await self.find(key)
            assert found is not None  # claims are never deleted
            return found
        return _claim(doc)

    async def mark_published(self, key: str) -> None:
        await self._collection.update_one({"_id": key}, {"$set": {"published": True}})


def _claim(doc: Document) -> Claim:
    return Claim(
        event=decode(doc["event"].encode()),
        published=bool(doc.get("published")),
        fingerprint=doc.get("fingerprint"),
    )
