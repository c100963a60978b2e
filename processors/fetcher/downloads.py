"""Unsplash's download event, once for each photo a job was resolved with.

The API guidelines ask an app to call a photo's `links.download_location` when it uses the
photo. Here a photo is used when its job resolves with it: the fetcher records the photo
(pending) before it appends the JobResolved, so no used photo is forgotten, even across a
crash; a worker in every fetcher then triggers the pending ones and marks each done. A lease
keeps two fetchers from triggering the same photo; a failed trigger is retried later, with
backoff. None of it stands in the way of a job's resolution.

(A fetcher that dies after Unsplash counted a trigger and before marking it done triggers it
again once: the event has no idempotency key to prevent that.)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

import httpx
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from processors.fetcher.unsplash import Unsplash
from runtime.aio import raise_if_cancelled, wait_event
from runtime.clock import utc_now
from runtime.store import Document, insert_new
from schema import Event, JobResolved

log = logging.getLogger(__name__)

LEASE_S = 30.0  # a trigger in progress is left to its fetcher this long
BATCH = 50  # triggers taken under one lease and sent together
IDLE_POLL_S = 5.0  # between looks for pending triggers when none was signalled
RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0


class Downloads:
    def __init__(self, collection: AsyncCollection[Document], unsplash: Unsplash) -> None:
        self._collection = collection
        self._unsplash = unsplash
        self._wake = asyncio.Event()

    async def prepare(self) -> None:
        await self._collection.create_index(
            [("done", ASCENDING), ("next_at", ASCENDING)], name="pending"
        )

    async def record(self, events: Sequence[Event]) -> None:
        """Note the photos of these outcomes (the resolved ones) as used, unless noted."""
        now = utc_now()
        docs = [
            {
                "_id": event.photo.id,
                "job_id": event.job_id,
                "location": event.photo.links.download_location,
                "done": False,
                "attempts": 0,
                "next_at": now,
            }
            for event in events
            if isinstance(event, JobResolved) and event.photo.links.download_location
        ]
        if docs:
            await insert_new(self._collection, docs)  # one noted already: left as it is
            self._wake.set()

    async def run(self) -> None:
        """Trigger pending download events, until cancelled."""
        prepared = False
        while True:
            raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
            self._wake.clear()  # before looking: a photo noted meanwhile wakes the next look
            try:
                if not prepared:
                    await self.prepare()
                    prepared = True
                while await self._trigger_some():
                    pass
            except PyMongoError as error:
                raise_if_cancelled()  # (see runtime.aio.retried)
                log.warning("download events: store unavailable", extra={"error": repr(error)})
            await wait_event(self._wake, IDLE_POLL_S)

    async def _trigger_some(self) -> bool:
        """Take up to BATCH due triggers under a lease of ours and send them together; False
        when none is due.

        Together: one at a time, each with a store write to take it and one to mark it done,
        the triggers fell behind the resolutions at 50 creations/s (4,533 pending after 4
        minutes), and the store sorted every pending one to take the next."""
        now = utc_now()
        due = [
            doc["_id"]
            async for doc in self._collection.find(
                {"done": False, "next_at": {"$lte": now}}, {"_id": 1}
            )
            .sort("next_at", ASCENDING)
            .limit(BATCH)
        ]
        if not due:
            return False
        lease = uuid.uuid4().hex
        # Ours are those still due as this write lands: another fetcher may have leased some.
        await self._collection.update_many(
            {"_id": {"$in": due}, "done": False, "next_at": {"$lte": now}},
            {
                "$set": {"next_at": now + timedelta(seconds=LEASE_S), "lease": lease},
                "$inc": {"attempts": 1},
            },
        )
        taken = await self._collection.find({"_id": {"$in": due}, "lease": lease}).to_list()
        # Each to its end, whatever the others do: those sent are marked done even when
        # noting another's failure found the store away (raised after).
        sent = await asyncio.gather(*(self._trigger(doc) for doc in taken), return_exceptions=True)
        if done := [doc["_id"] for doc, ok in zip(taken, sent, strict=True) if ok is True]:
            await self._collection.update_many({"_id": {"$in": done}}, {"$set": {"done": True}})
            log.info("download events sent", extra={"count": len(done)})
        for failure in sent:
            if isinstance(failure, BaseException):
                raise failure
        return True

    async def _trigger(self, doc: Document) -> bool:
        """Send one; whether it was sent (it is marked done with the others then). One that
        failed is left for later, one that never will be sent is marked skipped."""
        fields = {"photo_id": doc["_id"], "job_id": doc["job_id"]}
        try:
            await self._unsplash.download(doc["location"])
        except (ValueError, httpx.HTTPStatusError) as error:
            if isinstance(error, httpx.HTTPStatusError) and not _permanent(error.response):
                await self._later(doc, fields, error)
                return False
            # Not a location to send the key to, or one Unsplash refuses: never will be.
            log.warning("download event skipped", extra={**fields, "error": str(error)})
            await self._collection.update_one(
                {"_id": doc["_id"]}, {"$set": {"done": True, "skipped": str(error)}}
            )
            return False
        except Exception as error:  # any other failure: tried again later
            await self._later(doc, fields, error)
            return False
        return True

    async def _later(self, doc: Document, fields: dict[str, str], error: Exception) -> None:
        tried_before = doc["attempts"] - 1  # (read after this attempt was counted)
        wait = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** min(tried_before, 20))
        log.warning(
            "download event failed; retrying later",
            extra={**fields, "error": f"{type(error).__name__}: {error}", "in_s": wait},
        )
        await self._collection.update_one(
            {"_id": doc["_id"]}, {"$set": {"next_at": utc_now() + timedelta(seconds=wait)}}
        )


def _permanent(response: httpx.Response) -> bool:
    """A refusal asking again would not change (not a rate limit, not the server's fault)."""
    return 400 <= response.status_code < 500 and response.status_code != 429
