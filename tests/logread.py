"""Reading a whole topic back, for assertions about what is in the log."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from runtime.settings import Settings
from schema import Event, decode


async def read_topic(settings: Settings, topic: str, idle_s: float = 1.0) -> list[Any]:
    """Every record of the topic, from offset 0 up to its end as of now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            await consumer.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000))
            if not batch:
                return records
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()


async def read_events(settings: Settings) -> list[Event]:
    return [decode(r.value) for r in await read_topic(settings, settings.topics.jobs)]


def run(coro: Any) -> Any:
    return asyncio.run(coro)
