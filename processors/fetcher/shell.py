"""Consumes JobDue, fetches the photo (bounded concurrency), commits the claimed outcomes in
groups."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from processors.fetcher.core import FIRST_OUTCOME_VERSION, outcome
from processors.fetcher.downloads import Downloads
from processors.fetcher.quota import Quota
from processors.fetcher.source import PhotoClaims, PhotoSource
from processors.fetcher.unsplash import Unsplash
from runtime.aio import raise_if_cancelled, retried
from runtime.claims import Claim, ClaimStore
from runtime.clock import utc_now
from runtime.consuming import Consumed, run_together
from runtime.eventlog import Durability, EventPublisher
from runtime.groupcommit import GroupCommit
from runtime.offsets import OffsetTracker
from runtime.processor import processor_kit
from runtime.settings import Settings
from runtime.store import database, open_store
from schema import Event, JobCancelled, JobDue, JobFailed, Photo

log = logging.getLogger(__name__)
RETRY_S = 1.0
MAX_IN_FLIGHT = 1000  # due jobs taken over and not yet settled; the consumer waits beyond
MAX_BATCH = 500  # outcomes per group commit
#: How long a hand-over of partitions waits for their fetches under way, by default.
HANDOVER_WAIT_S = 1.5
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
        photos: PhotoSource,
        outcomes: ClaimStore,
        downloads: Downloads,
        now: Callable[[], datetime],
        max_in_flight: int = MAX_IN_FLIGHT,
        handover_s: float = HANDOVER_WAIT_S,
    ) -> None:
        self._publisher = publisher
        self._tracker = tracker
        self._topic = topic
        self._photos = photos
        self._outcomes = outcomes
        self._downloads = downloads
        self._now = now
        self._handover_s = handover_s
        self._in_flight = asyncio.Semaphore(max_in_flight)  # due jobs taken, not yet done
        self._tasks: dict[asyncio.Task[None], _Work] = {}  # due jobs being settled
        #: (job, version) of each JobDue in flight -> its settling.
        self._fetching: dict[tuple[str, int], _Work] = {}
        self.commits: GroupCommit[Claimed, None] = GroupCommit(
            self._commit, max_batch=MAX_BATCH, max_queued=max_in_flight
        )

    async def handle(self, batch: list[Consumed]) -> None:
        """Fetch each due job's photo, unless a cancel took the JobDue's version first.

        The log decides a race between a JobDue and a JobCancelled of the same version: the
        one appended first wins (the read model's fold says the same). A JobCancelled read
        before its JobDue claims that version, durably, before the JobDue is looked at, so
        the JobDue costs no Unsplash call, even after a restart; a JobCancelled read after
        the JobDue it lost to (one being fetched, or earlier in this batch) claims nothing."""
        due: list[Consumed] = []
        cancels: list[Consumed] = []
        seen = set(self._fetching)
        for item in batch:
            event = item.event
            if isinstance(event, JobDue):
                due.append(item)
                seen.add((event.job_id, event.version))
            elif isinstance(event, JobCancelled) and (event.job_id, event.version) not in seen:
                cancels.append(item)
            else:
                self._tracker.release(item.partition, item.offset)
        if cancels:
            slots = [
                (version_slot(c.event.job_id, c.event.version), c.event, None) for c in cancels
            ]
            await self._retrying(lambda: self._outcomes.claim_many(slots), cancels[0])
            for item in cancels:
                self._tracker.release(item.partition, item.offset)
        if not due:
            return
        keys = [outcome_key(_due(i)) for i in due] + [
            version_slot(i.event.job_id, i.event.version) for i in due
        ]
        claimed = await self._retrying(lambda: self._outcomes.find_many(keys), due[0])
        for item in due:
            slot = claimed.get(version_slot(item.event.job_id, item.event.version))
            if slot is not None and isinstance(slot.event, JobCancelled):
                log.info("cancelled before due: no fetch", extra=item.log_fields(self._topic))
                self._tracker.release(item.partition, item.offset)
                continue
            key = (item.event.job_id, item.event.version)
            if (fetching := self._fetching.get(key)) is not None and not fetching.let_go:
                # A copy of a JobDue being fetched (appended twice, or redelivered): no
                # second photo; its offset is released with the one being fetched.
                fetching.copies.append(item)
                continue
            await self._in_flight.acquire()
            work = _Work(item.partition)
            self._fetching[key] = work
            task = asyncio.create_task(
                self._settle(item, claimed.get(outcome_key(_due(item))), work)
            )
            self._tasks[task] = work
            task.add_done_callback(self._tasks.pop)

    async def revoked(self, partitions: set[int]) -> None:
        """Hand these partitions' due jobs over without fetching any photo twice: those no
        request to Unsplash carries yet are let go at once (the next owner fetches them),
        and those under way are waited for (bounded), so that their outcomes are claimed and
        their offsets committed before the next owner reads them. One that outlasts the
        wait goes on after the hand-over; its claimed outcome makes the next owner's copy
        harmless (that owner's request is then the one photo too many)."""
        leaving = {task: work for task, work in self._tasks.items() if work.partition in partitions}
        for work in leaving.values():
            work.let_go = True  # (one not yet started asks for nothing)
        asked = (work.asked for work in leaving.values() if work.asked is not None)
        if withdrawn := self._photos.withdraw(asked):
            log.info(
                "due jobs handed over before their photo was asked for",
                extra={"jobs": withdrawn, "partitions": sorted(partitions)},
            )
        if leaving:
            await asyncio.wait(leaving, timeout=self._handover_s)

    async def run(self) -> None:
        await run_together(self.commits.run(), self._downloads.run(), self._photos.run())

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _settle(self, item: Consumed, claim: Claim | None, work: _Work) -> None:
        """Fetch the job's photo unless its outcome is claimed, then commit the outcome;
        nothing if its partition is handed over before a request carries it."""
        fields = item.log_fields(self._topic)
        due = _due(item)
        key = outcome_key(due)
        try:
            if claim is None:
                if work.let_go:
                    return
                work.asked = self._photos.ask()
                try:
                    answer = await work.asked
                except asyncio.CancelledError:
                    raise_if_cancelled()  # this task is, not just its asking
                    return  # withdrawn: its offset stays uncommitted for the next owner
                event = outcome(due, answer, self._now())
                claimed = Claimed(key, event, fields)
            else:  # claimed by an earlier run, which may not have got to append it
                log.info("outcome claimed already; appending it again", extra=fields)
                claimed = Claimed(key, claim.event, fields)
            await self._retrying(lambda: self.commits.submit(claimed), item)
            for done in (item, *work.copies):
                self._tracker.release(done.partition, done.offset)
        finally:
            if self._fetching.get((due.job_id, due.version)) is work:
                del self._fetching[due.job_id, due.version]
            self._in_flight.release()

    async def _retrying(self, step: Callable[[], Awaitable[T]], item: Consumed) -> T:
        return await retried(
            step,
            (PyMongoError, KafkaError),
            log=log,
            message="fetch step failed; retrying",
            pause_s=RETRY_S,
            fields=item.log_fields(self._topic),
        )

    async def _commit(self, batch: list[Claimed]) -> list[None]:
        """Claim each outcome (first writer wins) and append the claimed outcomes."""
        claims = await self._outcomes.claim_many([(c.key, c.event, None) for c in batch])
        outcomes = [claim.event for claim in claims.values()]
        await self._downloads.record(outcomes)  # before: no photo used goes unreported
        await self._publisher.publish(outcomes)
        for c in batch:
            event = claims[c.key].event
            if isinstance(event, JobFailed):
                log.warning(
                    "job JobFailed: %s",
                    event.reason,
                    extra={**c.fields, "outcome": event.TYPE, "reason": event.reason},
                )
            else:
                log.info("job %s", event.TYPE, extra={**c.fields, "outcome": event.TYPE})
        return [None] * len(batch)


def version_slot(job_id: str, version: int) -> str:
    """The claim of a job's version by the first of its rival events the fetcher reads."""
    return f"{job_id}@v{version}"


def outcome_key(due: JobDue) -> str:
    """Where the outcome of a JobDue's attempt is claimed: the slot of the version it takes
    (no other event competes for it), or for a job's first attempt the job id, as before
    jobs could be retried (outcomes claimed then are found after an upgrade)."""
    version = due.version + 1
    return due.job_id if version == FIRST_OUTCOME_VERSION else version_slot(due.job_id, version)


def _due(item: Consumed) -> JobDue:
    assert isinstance(item.event, JobDue)  # handle() settles only those
    return item.event


@dataclass(slots=True)
class _Work:
    """A due job being settled: its partition, and its asking for a photo once made."""

    partition: int
    asked: asyncio.Future[Photo | str] | None = None
    let_go: bool = False  # its partition is handed over
    #: Copies of its JobDue that came while it was settled: released with it (or, let go,
    #: left for the next owner, as it is).
    copies: list[Consumed] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Claimed:
    """An attempt's outcome to commit: the key it is claimed under, and what to log it with."""

    key: str
    event: Event
    fields: dict[str, object]


async def run(settings: Settings, durability: Durability | None = None, *, name: str) -> None:
    """The fetcher, until cancelled, as consumer group `<prefix>.<name>`."""
    client = open_store(settings, component="fetcher")
    db = database(client, settings)
    quota = Quota(
        db["unsplash_quota"],
        window_s=settings.unsplash_window_s,
        reserve=settings.unsplash_ratelimit_reserve,
        pause_s=settings.unsplash_ratelimit_pause_s,
    )
    unsplash = Unsplash(settings, quota=quota)
    try:
        async with processor_kit(settings, name, durability) as kit:
            handler = FetchHandler(
                publisher=kit.publisher,
                tracker=kit.tracker,
                topic=kit.topic,
                photos=PhotoSource(
                    unsplash,
                    settings.fetch_concurrency,
                    quota,
                    claims=PhotoClaims(db["photo_claims"]),
                ),
                outcomes=ClaimStore(db["fetch_outcomes"]),
                downloads=Downloads(db["download_events"], unsplash),
                now=utc_now,
                handover_s=kit.handover_s,
            )
            try:
                await run_together(kit.loop.run(handler), handler.run())
            finally:
                await handler.aclose()
    finally:
        await unsplash.aclose()
        await client.close()
