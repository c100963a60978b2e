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
    #: How long a hand-over of partitions may wait for the work under way on them.
    handover_s: float


def group_id(settings: Settings, name: str) -> str:
    """The consumer group of the processor called `name`: `<prefix>.<name>`."""
    return f"{settings.topic_prefix}.{name}"


def handover_s(settings: Settings) -> float:
    """How long a member may spend handing partitions over. A rebalance gives every member
    the rebalance timeout to rejoin from when it begins; a member learns of it with its next
    heartbeat, and then hands over: 60 % of what is left, so it rejoins well in time (with
    the defaults 4.2 s, under the tests' fast groups 1 s)."""
    left_ms = settings.kafka_rebalance_timeout_ms - settings.kafka_heartbeat_interval_ms
    return max(0.0, 0.6 * left_ms / 1000)


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
        yield ProcessorKit(producer, publisher, tracker, loop, topics.jobs, handover_s(settings))
    finally:
        await shielded(producer.stop())
