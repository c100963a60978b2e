"""Consumes JobDue, fetches the photo (bounded concurrency), commits the claimed outcomes in
groups."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from processors.fetcher.core import outcome
from processors.fetcher.unsplash import Unsplash
from runtime.claims import Claim, ClaimStore
from runtime.clock import utc_now
from runtime.consuming import Consumed, run_together
from runtime.eventlog import Durability, EventPublisher
from runtime.groupcommit import GroupCommit
from runtime.offsets import OffsetTracker
from runtime.processor import processor_kit
from runtime.settings import Settings
from runtime.store import database, open_store
from schema import Event, JobDue

log = logging.getLogger(__name__)
RETRY_S = 1.0
MAX_IN_FLIGHT = 1000  # due jobs taken over and not yet settled; the consumer waits beyond
MAX_BATCH = 500  # outcomes per group commit
T = TypeVar("T")


class FetchHandler:
    """Fetches a photo for each due job and commits the outcomes in groups.

    Per fetched batch of records, one read finds the outcomes already claimed (a redelivery
    or a restart: no second photo is fetched for them). Each other due job gets its photo
    (at most `concurrency` requests to Unsplash at once); the outcomes then go through a group
    commit: one claims write and one append (acks=all, and under `jobline run` archived) for
    every outcome ready at that moment.

    Claims are not marked published (a write per job, the dearest a store makes): a job
    whose outcome is claimed already gets that outcome appended again, whether or not the
    first writer got it onto the log. That happens only on a redelivery, and a copy of an
    event on the log changes nothing (the projection applies each version once)."""

    def __init__(
        self,
        *,
        publisher: EventPublisher,
        tracker: OffsetTracker,
        topic: str,
        unsplash: Unsplash,
        outcomes: ClaimStore,
        concurrency: int,
        now: Callable[[], datetime],
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._publisher = publisher
        self._tracker = tracker
        self._topic = topic
        self._unsplash = unsplash
        self._outcomes = outcomes
        self._now = now
        self._slots = asyncio.Semaphore(concurrency)  # requests to Unsplash at once
        self._in_flight = asyncio.Semaphore(max_in_flight)  # due jobs taken, not yet done
        self._tasks: set[asyncio.Task[None]] = set()
        self.commits: GroupCommit[Claimed, None] = GroupCommit(
            self._commit, max_batch=MAX_BATCH, max_queued=max_in_flight
        )

    async def handle(self, batch: list[Consumed]) -> None:
        due = []
        for item in batch:
            if isinstance(item.event, JobDue):
                due.append(item)
            else:
                self._tracker.release(item.partition, item.offset)
        if not due:
            return
        claimed = await self._retrying(
            lambda: self._outcomes.find_many([i.event.job_id for i in due]), due[0]
        )
        for item in due:
            await self._in_flight.acquire()
            task = asyncio.create_task(self._settle(item, claimed.get(item.event.job_id)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def revoked(self, partitions: set[int]) -> None:
        """In-flight fetches finish: their claimed outcome makes a second delivery harmless."""

    async def run(self) -> None:
        await self.commits.run()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _settle(self, item: Consumed, claim: Claim | None) -> None:
        """Fetch the job's photo unless its outcome is claimed, then commit the outcome."""
        fields = item.log_fields(self._topic)
        due, job_id = item.event, item.event.job_id
        assert isinstance(due, JobDue)  # handle() takes only those
        try:
            if claim is None:
                async with self._slots:
                    answer = await self._unsplash.random_photo()
                event = outcome(due, answer, self._now())
                claimed = Claimed(job_id, event, fields)
            else:  # claimed by an earlier run, which may not have got to append it
                log.info("outcome claimed already; appending it again", extra=fields)
                claimed = Claimed(job_id, claim.event, fields)
            await self._retrying(lambda: self.commits.submit(claimed), item)
            self._tracker.release(item.partition, item.offset)
        finally:
            self._in_flight.release()

    async def _retrying(self, step: Callable[[], Awaitable[T]], item: Consumed) -> T:
        while True:
            try:
                return await step()
            except (PyMongoError, KafkaError) as error:
                log.warning(
                    "fetch step failed; retrying",
                    extra={**item.log_fields(self._topic), "error": repr(error)},
                )
                await asyncio.sleep(RETRY_S)

    async def _commit(self, batch: list[Claimed]) -> list[None]:
        """Claim each outcome (first writer wins) and append the claimed outcomes."""
        claims = await self._outcomes.claim_many([(c.job_id, c.event, None) for c in batch])
        await self._publisher.publish([claim.event for claim in claims.values()])
        for c in batch:
            event = claims[c.job_id].event
            log.info("job %s", event.TYPE, extra={**c.fields, "outcome": event.TYPE})
        return [None] * len(batch)


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outcome to commit: the job's, and what to log it with."""

    job_id: str
    event: Event
    fields: dict[str, object]


async def run(settings: Settings, durability: Durability | None = None, *, name: str) -> None:
    """The fetcher, until cancelled, as consumer group `<prefix>.<name>`."""
    client = open_store(settings)
    unsplash = Unsplash(settings)
    try:
        async with processor_kit(settings, name, durability) as kit:
            outcomes = ClaimStore(database(client, settings)["fetch_outcomes"])
            handler = FetchHandler(
                publisher=kit.publisher,
                tracker=kit.tracker,
                topic=kit.topic,
                unsplash=unsplash,
                outcomes=outcomes,
                concurrency=settings.fetch_concurrency,
                now=utc_now,
            )
            try:
                await run_together(kit.loop.run(handler), handler.run())
            finally:
                await handler.aclose()
    finally:
        await unsplash.aclose()
        await client.close()
