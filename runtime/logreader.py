"""Reading a topic from given offsets (default: the beginning) up to its end as of now.

The end is taken from each partition's high watermark after the first fetch, because the
embedded broker answers `end_offsets()` wrongly (DESIGN.md §4). Records appended after that
are left for the next read. No consumer group: nothing is committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from runtime.aio import shielded
from runtime.eventlog import start_client
from runtime.settings import Settings

#: The most a read takes from one partition in one fetch.
FETCH_BYTES = 16 * 1024 * 1024


@dataclass
class LogReader:
    settings: Settings
    topic: str
    start: Mapping[int, int] = field(default_factory=dict)
    #: Where each partition was read up to (the next offset): a start for the next read.
    positions: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    done: int = 0

    @property
    def total(self) -> int:
        """Records between the start and the end, once every end is known."""
        return sum(end - self.start.get(p, 0) for p, end in self.ends.items())

    async def batches(self, max_records: int = 2000) -> AsyncIterator[list[Any]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            enable_auto_commit=False,
            max_poll_records=max_records,
            # A fetch with nothing to give waits this long (aiokafka's default: 500 ms): a
            # read whose partitions are at their ends already, such as a replay's catch-up
            # after a quiet swap, waited that long for nothing.
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            # A read of a whole log: a partition's records come in large fetches (aiokafka
            # asks for a partition's next records only once those it holds are taken, so
            # with its 1 MiB a replay waited for a round trip every few thousand events).
            max_partition_fetch_bytes=FETCH_BYTES,
            fetch_max_bytes=FETCH_BYTES * 4,
        )
        await start_client(consumer, consumer.stop)
        try:
            await consumer.topics()  # fetches the cluster metadata
            tps = [
                TopicPartition(self.topic, p)
                for p in consumer.partitions_for_topic(self.topic) or ()
            ]
            consumer.assign(tps)
            for tp in tps:
                self.positions[tp.partition] = self.start.get(tp.partition, 0)
                consumer.seek(tp, self.positions[tp.partition])
            while not self._finished(tps):
                fetched = await consumer.getmany(timeout_ms=500)
                yield await self._within_ends(consumer, tps, fetched)
        finally:
            await shielded(consumer.stop())

    async def _within_ends(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], fetched: Any
    ) -> list[Any]:
        for tp in tps:
            high = consumer.highwater(tp)
            if high is not None and tp.partition not in self.ends:
                self.ends[tp.partition] = max(high, self.positions[tp.partition])
        batch = [
            record
            for tp, records in fetched.items()
            for record in records
            if record.offset < self.ends.get(tp.partition, 0)
        ]
        for tp in tps:
            # The consumer's position steps over control records too (transactions on
            # Redpanda); capped at the end, so the next read starts where this one stopped.
            position = await consumer.position(tp)
            self.positions[tp.partition] = min(position, self.ends.get(tp.partition, position))
        self.done += len(batch)
        return batch

    def _finished(self, tps: list[TopicPartition]) -> bool:
        return all(
            tp.partition in self.ends and self.positions[tp.partition] >= self.ends[tp.partition]
            for tp in tps
        )
