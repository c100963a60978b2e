"""Durable timers on the log.

A wait (a JobRequested, or the JobRetried of a failed job tried again) stays held (its offset
uncommitted) until its JobDue is acknowledged by the broker, so after a crash the group
resumes at the oldest unfired timer and re-arms every timer from there: none is lost, and
none fires early because `due_at` is in the event. A timer is dropped when a later version of
its job is read back from the log: its JobDue (after a restart, the JobDue another instance
already emitted) or a JobCancelled. Timers only fire on partitions whose backlog has been
read, so restarts rarely emit a JobDue twice; when they do, it carries the same event id and
every consumer treats it as the redelivery it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable
from datetime import datetime

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from processors.delay.core import is_due, job_due, seconds_until_due
from runtime.aio import raise_if_cancelled
from runtime.clock import utc_now
from runtime.consuming import Consumed, run_together
from runtime.eventlog import Durability, EventPublisher
from runtime.metrics import DUE_LATENESS, TIMERS_PENDING
from runtime.offsets import OffsetTracker
from runtime.processor import processor_kit
from runtime.settings import Settings
from schema import JobCancelled, Scheduling

log = logging.getLogger(__name__)
IDLE_WAIT_S = 1.0
RETRY_S = 1.0
#: How long a hand-over of partitions waits for JobDues being appended, by default.
HANDOVER_WAIT_S = 1.5


class DelayHandler:
    def __init__(
        self,
        publisher: EventPublisher,
        tracker: OffsetTracker,
        topic: str,
        now: Callable[[], datetime],
        caught_up: Callable[[int], bool],
        *,
        handover_s: float = HANDOVER_WAIT_S,
    ) -> None:
        self._publisher = publisher
        self._tracker = tracker
        self._topic = topic
        self._now = now
        self._caught_up = caught_up
        self._handover_s = handover_s
        self._pending: dict[str, Consumed] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._wake = asyncio.Event()
        self._leaving: set[int] = set()  # partitions being handed over: fire none of theirs
        self._idle = asyncio.Event()  # no JobDue being appended
        self._idle.set()

    async def handle(self, batch: list[Consumed]) -> None:
        for item in batch:
            self._take(item)
        TIMERS_PENDING.set(len(self._pending))
        self._wake.set()

    def _take(self, item: Consumed) -> None:
        """Arm a timer for each wait (a JobRequested, a JobRetried); drop it when a later
        version of its job is read (its JobDue, a JobCancelled). One timer per job, for its
        latest wait: a copy of a wait, or an older one, arms nothing."""
        event = item.event
        armed = self._pending.get(event.job_id)
        if armed is not None and armed.event.version >= event.version:
            self._tracker.release(item.partition, item.offset)  # a copy, or older news
            return
        if armed is not None:  # the armed wait is over: fired, cancelled, or superseded
            del self._pending[event.job_id]
            self._tracker.release(armed.partition, armed.offset)
            if isinstance(event, JobCancelled):
                log.info("timer dropped: job cancelled", extra=item.log_fields(self._topic))
        if isinstance(event, Scheduling):
            self._pending[event.job_id] = item
            heapq.heappush(self._heap, (event.due_at, event.job_id))
            return
        self._tracker.release(item.partition, item.offset)

    async def revoked(self, partitions: set[int]) -> None:
        """Fire no more timers of these partitions; let JobDues being appended land (their
        offsets are then released and committed, so the next owner does not fire them
        again), then drop the rest: the next owner re-arms them from the log."""
        self._leaving |= partitions
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._handover_s):
                    await self._idle.wait()
            for job_id, item in list(self._pending.items()):
                if item.partition in partitions:
                    del self._pending[job_id]
            TIMERS_PENDING.set(len(self._pending))
        finally:
            self._leaving -= partitions

    async def run_timers(self) -> None:
        while True:
            raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
            due = self._due_now()
            if due:
                await self._fire(due)
                continue
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can lose a cancellation
            # that coincides with its timeout, and this loop would then never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sleep_s()):
                    await self._wake.wait()

    def _sleep_s(self) -> float:
        while self._heap and self._heap[0][1] not in self._pending:
            heapq.heappop(self._heap)
        if not self._heap:
            return IDLE_WAIT_S
        item = self._pending[self._heap[0][1]]
        return min(IDLE_WAIT_S, max(0.02, seconds_until_due(_wait(item), self._now())))

    def _due_now(self) -> list[Consumed]:
        now = self._now()
        due: list[tuple[tuple[datetime, str], Consumed]] = []
        deferred: list[tuple[tuple[datetime, str], Consumed]] = []
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            item = self._pending.get(entry[1])
            if item is None or not is_due(_wait(item), now) or item.partition in self._leaving:
                continue
            (due if self._caught_up(item.partition) else deferred).append((entry, item))
        for entry, _ in deferred:
            heapq.heappush(self._heap, entry)
        return [item for _, item in due]

    async def _fire(self, due: list[Consumed]) -> None:
        now = self._now()
        self._idle.clear()
        try:
            await self._publisher.publish([job_due(_wait(item), now) for item in due])
        except (KafkaError, PyMongoError) as error:
            # Not acknowledged (or, under `jobline run`, not archived): the timers stay armed
            # and held; try again shortly.
            raise_if_cancelled()  # (see runtime.aio.retried)
            log.warning("cannot emit JobDue; retrying", extra={"error": repr(error)})
            for item in due:
                heapq.heappush(self._heap, (_wait(item).due_at, item.event.job_id))
            self._idle.set()
            await asyncio.sleep(RETRY_S)
            return
        appended = self._now()
        for item in due:
            if self._pending.get(item.event.job_id) is item:
                del self._pending[item.event.job_id]
            self._tracker.release(item.partition, item.offset)
            DUE_LATENESS.observe((appended - _wait(item).due_at).total_seconds())
            log.info("job due", extra=item.log_fields(self._topic))
        TIMERS_PENDING.set(len(self._pending))
        self._idle.set()


def _wait(item: Consumed) -> Scheduling:
    assert isinstance(item.event, Scheduling)
    return item.event


async def run(settings: Settings, durability: Durability | None = None, *, name: str) -> None:
    """The delay processor, until cancelled, as consumer group `<prefix>.<name>`."""
    async with processor_kit(settings, name, durability) as kit:
        handler = DelayHandler(
            kit.publisher,
            kit.tracker,
            kit.topic,
            utc_now,
            kit.loop.caught_up,
            handover_s=kit.handover_s,
        )
        await run_together(kit.loop.run(handler), handler.run_timers())
