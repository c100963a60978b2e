"""Consumes JobDue, fetches the photo (bounded concurrency), publishes the claimed outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from processors.fetcher.core import outcome
from processors.fetcher.unsplash import Unsplash
from runtime.claims import ClaimStore
from runtime.clock import utc_now
from runtime.consuming import Consumed
from runtime.log import Durability, EventPublisher
from runtime.offsets import OffsetTracker
from runtime.processor import processor_kit
from runtime.settings import Settings
from runtime.store import database, open_store
from schema import JobDue

log = logging.getLogger(__name__)
RETRY_S = 1.0


class FetchHandler:
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
    ) -> None:
        self._publisher = publisher
        self._tracker = tracker
        self._topic = topic
        self._unsplash = unsplash
        self._outcomes = outcomes
        self._now = now
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, batch: list[Consumed]) -> None:
        for item in batch:
            if not isinstance(item.event, JobDue):
                self._tracker.release(item.partition, item.offset)
                continue
            await self._slots.acquire()
            task = asyncio.create_task(self._fetch(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def revoked(self, partitions: set[int]) -> None:
        """In-flight fetches finish: their claimed outcome makes a second delivery harmless."""

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _fetch(self, item: Consumed) -> None:
        fields = item.log_fields(self._topic)
        try:
            while True:
                try:
                    await self._resolve(item.event.job_id, fields)
                    break
                except (PyMongoError, KafkaError) as error:
                    log.warning(
                        "fetch step failed; retrying", extra={**fields, "error": repr(error)}
                    )
                    await asyncio.sleep(RETRY_S)
            self._tracker.release(item.partition, item.offset)
        finally:
            self._slots.release()

    async def _resolve(self, job_id: str, fields: dict[str, object]) -> None:
        """Claim the job's outcome, then publish whichever outcome won the claim."""
        claim = await self._outcomes.find(job_id)
        if claim is None:
            answer = await self._unsplash.random_photo()
            claim = await self._outcomes.claim(job_id, outcome(job_id, answer, self._now()))
        if claim.published:
            log.info("outcome already published", extra=fields)
            return
        await self._publisher.publish([claim.event])
        await self._outcomes.mark_published(job_id)
        log.info("job %s", claim.event.TYPE, extra={**fields, "outcome": claim.event.TYPE})


async def run(
    settings: Settings, durability: Durability | None = None, *, name: str = "fetcher"
) -> None:
    """The fetcher, until cancelled; `name` picks its consumer group (`<prefix>.<name>`)."""
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
                await kit.loop.run(handler)
            finally:
                await handler.aclose()
    finally:
        await unsplash.aclose()
        await client.close()
