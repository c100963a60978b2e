"""First-writer-wins claims of an event, in the store.

Used twice: an idempotency key claims the JobRequested it creates, and the fetcher claims a
job's outcome. The claim is stored before the event is published, so whoever comes second
(a retry, a racing instance, a restart after a crash) publishes the stored event, never a new
one. The API marks a key's claim published once its event is on the log, and a retry with
that key then appends nothing; the fetcher does not mark (a write per job) and appends a
claimed outcome again on a redelivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pymongo.asynchronous.collection import AsyncCollection

from runtime.clock import utc_now
from runtime.store import Document, insert_new
from schema import Event, decode, encode


@dataclass(frozen=True, slots=True)
class Claim:
    event: Event
    published: bool
    fingerprint: str | None


class ClaimStore:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def find_many(self, keys: Sequence[str]) -> dict[str, Claim]:
        """The claims stored under any of these keys (one read)."""
        if not keys:
            return {}
        cursor = self._collection.find({"_id": {"$in": sorted(set(keys))}})
        return {doc["_id"]: _claim(doc) async for doc in cursor}

    async def claim(self, key: str, event: Event, fingerprint: str | None = None) -> Claim:
        """Store `event` under `key` unless something is stored there; return what is."""
        return (await self.claim_many([(key, event, fingerprint)]))[key]

    async def claim_many(self, wanted: Sequence[tuple[str, Event, str | None]]) -> dict[str, Claim]:
        """`claim` for many keys in one write (plus one read of those already claimed).
        Where a key comes more than once, its first event is the one that may claim it."""
        if not wanted:
            return {}
        docs: dict[str, Document] = {}
        for key, event, fingerprint in wanted:
            docs.setdefault(key, _doc(key, event, fingerprint))
        claimed = {key: _claim(doc) for key, doc in docs.items()}
        keys = list(docs)
        taken = {keys[i] for i in await insert_new(self._collection, list(docs.values()))}
        if taken:
            found = await self.find_many(sorted(taken))
            assert set(found) == taken  # claims are never deleted
            claimed |= found
        return claimed

    async def mark_published(self, *keys: str) -> None:
        if len(keys) == 1:
            await self._collection.update_one({"_id": keys[0]}, {"$set": {"published": True}})
        elif keys:
            await self._collection.update_many(
                {"_id": {"$in": list(keys)}}, {"$set": {"published": True}}
            )


def _doc(key: str, event: Event, fingerprint: str | None) -> Document:
    return {
        "_id": key,
        "event": encode(event).decode(),
        "fingerprint": fingerprint,
        "published": False,
        "claimed_at": utc_now(),
    }


def _claim(doc: Document) -> Claim:
    return Claim(
        event=decode(doc["event"].encode()),
        published=bool(doc.get("published")),
        fingerprint=doc.get("fingerprint"),
    )
