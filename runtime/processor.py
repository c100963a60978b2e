"""What every processor's `run(settings)` needs: topics, a producer, a consumer loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from runtime.aio import shielded
from runtime.consuming import ProcessorLoop
from runtime.eventlog import (
    DeadLetters,
    Durability,
    KafkaEventPublisher,
    consumer,
    ensure_topics,
    start_producer,
)
from runtime.offsets import OffsetTracker
from runtime.settings import Settings


@dataclass(frozen=True, slots=True)
class ProcessorKit:
    producer: AIOKafkaProducer
    publisher: KafkaEventPublisher
    tracker: OffsetTracker
    loop: ProcessorLoop
    topic: str
    #: How long a hand-over of partitions may wait for the work under way on them: a
    #: quarter of the group's rebalance timeout, so the member rejoins well within it.
    handover_s: float


def group_id(settings: Settings, name: str) -> str:
    """The consumer group of the processor called `name`: `<prefix>.<name>`."""
    return f"{settings.topic_prefix}.{name}"


@asynccontextmanager
async def processor_kit(
    settings: Settings, name: str, durability: Durability | None = None
) -> AsyncIterator[ProcessorKit]:
    """Topics ensured, a started producer and a (not yet started) consumer loop for group
    `<prefix>.<name>`; everything is stopped on exit. With `durability` (under `jobline
    run`: the archive), an append counts as done (and an offset it derives from is released)
    only once durable, and a fetched record is handled only once durable, so that nothing
    acts on a record the embedded broker could still lose."""
    await ensure_topics(settings)
    group = group_id(settings, name)
    topics = settings.topics
    producer = await start_producer(settings, group)
    try:
        tracker = OffsetTracker()
        loop = ProcessorLoop(
            consumer(settings, group),
            topics.jobs,
            tracker,
            DeadLetters(producer, topics.dead_letters, group, durability),
            durability,
        )
        publisher = KafkaEventPublisher(producer, topics.jobs, durability)
        handover_s = settings.kafka_rebalance_timeout_ms / 1000 / 4
        yield ProcessorKit(producer, publisher, tracker, loop, topics.jobs, handover_s)
    finally:
        await shielded(producer.stop())
