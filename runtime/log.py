"""The log (Kafka protocol, aiokafka): topics, producer, consumers, publisher, dead letters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from runtime.aio import shielded
from runtime.settings import Settings
from schema import Event, encode, headers_for
from schema.topics import FOREVER

log = logging.getLogger(__name__)
TOPIC_ALREADY_EXISTS = 36
CANCELLED_START_WAIT_S = 10


async def ensure_topics(settings: Settings, wait_s: float = 30) -> None:
    """Create the events and dead-letter topics if missing (idempotent), kept forever."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, client_id="jobline-admin"
    )
    await start_client(admin, admin.close, wait_s)
    try:
        topics = settings.topics
        new = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=FOREVER,
            )
            for name in (topics.jobs, topics.dead_letters)
        ]
        try:
            response = await admin.create_topics(new)
        except TopicAlreadyExistsError:
            return
        for name, code, message in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: {message} (error {code})")
    finally:
        await shielded(admin.close())


async def start_client(client: Any, stop: Any, wait_s: float = 30, what: str = "broker") -> None:
    """Start an aiokafka client, retrying while the broker is not up yet.

    Start-up is shielded from cancellation: aiokafka loses track of its bootstrap connection
    when `start()` is cancelled half-way, and that connection then leaks. A cancelled start
    is let finish (bounded), then the client is stopped, then the cancellation goes on."""
    task = asyncio.ensure_future(_start_retrying(client, wait_s, what))
    try:
        await asyncio.shield(task)
    except BaseException:
        with suppress(BaseException):
            async with asyncio.timeout(CANCELLED_START_WAIT_S):
                await task
        await shielded(stop())
        raise


async def _start_retrying(client: Any, wait_s: float, what: str) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            await client.start()
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for the %s", what)
            await asyncio.sleep(0.5)
        else:
            return


async def start_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=2,
    )
    await start_client(producer, producer.stop)
    return producer


def consumer(settings: Settings, group_id: str, *topics: str) -> AIOKafkaConsumer:
    """A group consumer that never auto-commits: processors commit after effects are durable."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        client_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
        max_poll_records=500,
    )


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None:
        """Append the events to the log; returns once every one is acknowledged."""


#: Called with the broker's acknowledgements (RecordMetadata) before `publish` returns: a
#: place to wait until appended records are durable beyond the broker (the embedded archive).
AfterAck = Callable[[Sequence[Any]], Awaitable[None]]


class KafkaEventPublisher:
    def __init__(
        self, producer: AIOKafkaProducer, topic: str, after_ack: AfterAck | None = None
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._after_ack = after_ack

    async def publish(self, events: Sequence[Event]) -> None:
        pending = [
            await self._producer.send(
                self._topic, encode(event), key=event.job_id.encode(), headers=headers_for(event)
            )
            for event in events
        ]
        acknowledged = await asyncio.gather(*pending)
        if self._after_ack is not None:
            await self._after_ack(acknowledged)


class DeadLetters:
    """Writes a record that cannot be processed, with its original bytes and the reason."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        consumer_group: str,
        after_ack: AfterAck | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self.consumer_group = consumer_group
        self._after_ack = after_ack
        self.count = 0

    async def send(self, record: Any, reason: str) -> None:
        headers = [
            *(record.headers or ()),
            ("dead-letter-reason", reason.encode()),
            ("dead-letter-source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("dead-letter-consumer", self.consumer_group.encode()),
        ]
        acknowledged = await self._producer.send_and_wait(
            self._topic, record.value, key=record.key, headers=headers
        )
        if self._after_ack is not None:
            await self._after_ack([acknowledged])
        self.count += 1
        log.warning(
            "dead-lettered a record",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
                "consumer": self.consumer_group,
                "dead_letters": self.count,
            },
        )
