"""The consume loop every processor shares: decode, dead-letter poison, hand over, commit.

Every record is held from the moment it is fetched until its handler releases it, and the
group offset only ever moves to the lowest held record: at-least-once, never a skipped effect.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pymongo.errors import PyMongoError

from runtime.aio import cancel_all, raise_if_cancelled, retried, shielded
from runtime.eventlog import DeadLetters, Durability, is_gap, start_client
from runtime.metrics import CONSUMER_LAG
from runtime.offsets import OffsetTracker
from schema import Event, PoisonRecord, decode

log = logging.getLogger(__name__)
RETRY_S = 1.0
STOP_COMMIT_S = 5.0


class Consumed(NamedTuple):
    partition: int
    offset: int
    event: Event

    def log_fields(self, topic: str) -> dict[str, Any]:
        return {
            "topic": topic,
            "partition": self.partition,
            "offset": self.offset,
            "event_id": self.event.event_id,
            "job_id": self.event.job_id,
            "event_type": self.event.TYPE,
        }


class BatchHandler(Protocol):
    async def handle(self, batch: list[Consumed]) -> None:
        """Take over a batch; release each record's offset once its effect is durable."""

    async def revoked(self, partitions: set[int]) -> None:
        """The group takes these partitions away: finish (within a bound) or drop what is
        under way for them; return when the offsets to commit for them are final."""


class ProcessorLoop:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        tracker: OffsetTracker,
        dead_letters: DeadLetters,
        durability: Durability | None = None,
    ) -> None:
        self.consumer = consumer
        self.durability = durability
        self.topic = topic
        self.tracker = tracker
        self.dead_letters = dead_letters
        self.handler: BatchHandler | None = None
        self._caught_up: set[int] = set()
        self._measured: set[int] = set()  # partitions whose lag this member reports

    def caught_up(self, partition: int) -> bool:
        """Whether this partition's backlog, as of its assignment, has been read once."""
        if partition in self._caught_up:
            return True
        high = self.consumer.highwater(TopicPartition(self.topic, partition))
        seen = self.tracker.next_offset(partition)
        if high is not None and seen is not None and seen >= high:
            self._caught_up.add(partition)
            return True
        return False

    async def run(self, handler: BatchHandler) -> None:
        self.handler = handler
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        try:
            # Inside the try: a consumer cancelled while still joining must be stopped too,
            # or it lingers as a group member that holds partitions and processes nothing.
            await start_client(self.consumer, self.consumer.stop)
            while True:
                raise_if_cancelled()
                fetched = await self.consumer.getmany(timeout_ms=200)
                if self.durability is not None and fetched:
                    # Under `jobline run` a record counts only once archived: an effect of
                    # one the broker could lose with it (a job in the read model that the
                    # restored log lacks) must not happen.
                    last = [records[-1] for records in fetched.values() if records]
                    await self.durability.archived(last)
                batch = [
                    item
                    for tp, records in fetched.items()
                    for item in await self._decode(tp.partition, records)
                ]
                if batch:  # one hand-over per fetch, across partitions: one bulk write
                    await handler.handle(batch)
                await self.commit()
                self._measure_lag()
        finally:
            await shielded(self._stop())

    async def _stop(self) -> None:
        try:
            if self.handler is not None:  # a stop hands every partition over
                await self.handler.revoked({tp.partition for tp in self.consumer.assignment()})
            # Bounded: aiokafka waits for a coordinator without end, and stopping must not
            # hang while the broker is away. Records left uncommitted are redelivered.
            async with asyncio.timeout(STOP_COMMIT_S):
                await self.commit()
        except TimeoutError:
            log.warning("no final commit: the broker is unreachable", extra={"topic": self.topic})
        finally:
            self._unmeasure(set(self._measured))
            await self.consumer.stop()

    def _measure_lag(self) -> None:
        group = self.dead_letters.consumer_group
        assigned = self.consumer.assignment()
        self._unmeasure(self._measured - {tp.partition for tp in assigned})  # moved meanwhile
        for tp in assigned:
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            # Nothing seen since the assignment, yet a watermark known: the fetch found the
            # partition with nothing past our position.
            done = self.tracker.committable(tp.partition)
            CONSUMER_LAG.labels(group, str(tp.partition)).set(
                0 if done is None else max(0, high - done)
            )
            self._measured.add(tp.partition)

    def _unmeasure(self, partitions: set[int]) -> None:
        """No lag reported for partitions this member no longer holds: their next owner
        reports it."""
        for partition in partitions & self._measured:
            CONSUMER_LAG.remove(self.dead_letters.consumer_group, str(partition))
        self._measured -= partitions

    async def _decode(self, partition: int, records: list[Any]) -> list[Consumed]:
        batch = []
        for record in records:
            self.tracker.hold(partition, record.offset)
            if is_gap(record):  # a placeholder of a restored log: nothing to do
                self.tracker.release(partition, record.offset)
                continue
            try:
                batch.append(Consumed(partition, record.offset, decode(record.value)))
            except PoisonRecord as error:
                await self._dead_letter(record, str(error))
                self.tracker.release(partition, record.offset)
        return batch

    async def _dead_letter(self, record: Any, reason: str) -> None:
        """Like every other effect, retried (its offset held) until the broker takes it."""
        await retried(
            lambda: self.dead_letters.send(record, reason),
            (KafkaError, PyMongoError),
            log=log,
            message="cannot dead-letter; retrying",
            pause_s=RETRY_S,
        )

    async def revoked(self, partitions: set[int]) -> None:
        """Hand the partitions over: let the effects under way on them finish (bounded), so
        that the next owner does not start them again, commit, and forget them."""
        if self.handler is not None:
            await self.handler.revoked(partitions)
        await self.commit(partitions)
        self._caught_up -= partitions
        self.tracker.forget(partitions)
        self._unmeasure(partitions)

    async def commit(self, only: set[int] | None = None) -> None:
        offsets = {p: o for p, o in self.tracker.to_commit().items() if only is None or p in only}
        if not offsets:
            return
        try:
            await self.consumer.commit(
                {TopicPartition(self.topic, p): o for p, o in offsets.items()}
            )
        except (CommitFailedError, KafkaError) as error:
            log.warning(
                "commit failed; will retry", extra={"topic": self.topic, "error": repr(error)}
            )
        else:
            self.tracker.committed(offsets)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ProcessorLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._loop.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={
                "group": self._loop.dead_letters.consumer_group,
                "topic": self._loop.topic,
                "partitions": sorted(tp.partition for tp in assigned),
            },
        )


async def run_together(*coros: Any) -> None:
    """Run a processor's tasks; when one ends or fails, cancel the others and re-raise.

    The first is stopped first: a consume loop, which hands its partitions over while the
    others (which settle the work under way) still run; then the others, all at once."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        await cancel_all(tasks[0])
        await cancel_all(*tasks[1:])
