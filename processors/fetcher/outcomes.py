"""The fetcher's claim on each job's outcome: the first outcome stored wins, forever.

Two fetchers (a redelivery after a crash, or a rebalance overlap) may both ask Unsplash for the
same job; only the first to insert its outcome here has it published, the other publishes the
stored winner. So a job never resolves with two different photos.
"""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from runtime.clock import utc_now
from runtime.store import Document
from schema import JobFailed, JobResolved, decode, encode

Outcome = JobResolved | JobFailed


class OutcomeStore:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def find(self, job_id: str) -> tuple[Outcome, bool] | None:
        """The stored outcome and whether it is known to be published."""
        doc = await self._collection.find_one({"_id": job_id})
        return None if doc is None else (_outcome(doc), bool(doc.get("published")))

    async def claim(self, event: Outcome) -> Outcome:
        doc = {"_id": event.job_id, "event": encode(event).decode(), "claimed_at": utc_now()}
        try:
            await self._collection.insert_one(doc)
        except DuplicateKeyError:
            winner = await self._collection.find_one({"_id": event.job_id})
            assert winner is not None
            return _outcome(winner)
        return event

    async def mark_published(self, job_id: str) -> None:
        await self._collection.update_one({"_id": job_id}, {"$set": {"published": True}})


def _outcome(doc: Document) -> Outcome:
    event = decode(doc["event"].encode())
    assert isinstance(event, JobResolved | JobFailed)
    return event
