"""The log (Kafka protocol, aiokafka): topics, producer, consumers, publisher, dead letters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.group import LeaveGroupRequest

from runtime.aio import shielded
from runtime.metrics import DEAD_LETTERS, EVENTS_APPENDED
from runtime.settings import Settings
from schema import Event, encode, headers_for
from schema.topics import FOREVER

log = logging.getLogger(__name__)
TOPIC_ALREADY_EXISTS = 36
#: Header of a placeholder record: `jobline run` restores the embedded broker's log with one
#: where its archive lacks an offset (runtime/archive.py). It carries nothing; skip it.
GAP_HEADER = "jobline-archive-gap"


def is_gap(record: Any) -> bool:
    return any(name == GAP_HEADER for name, _ in record.headers or ())


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


class GroupConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka is untyped
    """An aiokafka consumer that leaves its group on stop in every generation.

    aiokafka says LeaveGroup on stop only when its generation is above 0, Kafka's and
    Redpanda's first being 1; the embedded broker (Tansu) numbers a group's first generation 0.
    A member of it that stopped left no word: the group kept it for a session timeout, and
    its next member waited that, then a failed sync and a second join, before it had the
    partitions (a delay processor restarted in place: ~19 s with the default 10 s timeouts).
    This one says LeaveGroup itself then, at the moment aiokafka would (after its last
    commit and revocation)."""

    async def start(self) -> None:
        await super().start()
        coordinator = self._coordinator
        if coordinator is None or getattr(coordinator, "_group_instance_id", None) is not None:
            return  # no group, or static membership: a static member keeps its place
        aiokafka_leave = coordinator._maybe_leave_group

        async def leave() -> None:
            if coordinator.generation == 0:
                request = LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
                try:
                    await coordinator._send_req(request)
                except KafkaError as error:  # best effort, as aiokafka's own
                    log.warning("LeaveGroup failed: %s", error)
            await aiokafka_leave()

        coordinator._maybe_leave_group = leave


def consumer(settings: Settings, group_id: str, *topics: str) -> AIOKafkaConsumer:
    """A group consumer that never auto-commits: processors commit after effects are durable."""
    return GroupConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        client_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_poll_records=500,
    )


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> Sequence[Any]:
        """Append the events to the log; returns once every one is acknowledged (and
        durable), with what was appended."""


@dataclass(frozen=True, slots=True)
class Appended:
    """A record the broker acknowledged, with what was sent."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Durability(Protocol):
    """What makes the log durable where the broker alone does not (the embedded broker keeps
    its log in memory; `jobline run` archives it in the store: runtime/archive.py)."""

    async def appended(self, records: Sequence[Appended]) -> None:
        """Make these acknowledged records durable; return once they are (or raise)."""

    async def archived(self, records: Sequence[Any]) -> None:
        """Return once these fetched records (topic, partition, offset) are durable."""


class KafkaEventPublisher:
    def __init__(
        self, producer: AIOKafkaProducer, topic: str, durability: Durability | None = None
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._durability = durability

    async def publish(self, events: Sequence[Event]) -> list[Appended]:
        """Append the events (one produce request per partition, acks=all) and, where the
        log needs it, make them durable; returns what was appended."""
        sent = [(event.job_id.encode(), encode(event), headers_for(event)) for event in events]
        pending = [
            await self._producer.send(self._topic, value, key=key, headers=headers)
            for key, value, headers in sent
        ]
        appended = [
            Appended(meta.topic, meta.partition, meta.offset, meta.timestamp, key, value, headers)
            for meta, (key, value, headers) in zip(
                await asyncio.gather(*pending), sent, strict=True
            )
        ]
        if self._durability is not None:
            await self._durability.appended(appended)
        for event in events:
            EVENTS_APPENDED.labels(event.TYPE).inc()
        return appended


class DeadLetters:
    """Writes a record that cannot be processed, with its original bytes and the reason."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        consumer_group: str,
        durability: Durability | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self.consumer_group = consumer_group
        self._durability = durability
        self.count = 0

    async def send(self, record: Any, reason: str) -> None:
        headers = [
            *(record.headers or ()),
            ("dead-letter-reason", reason.encode()),
            ("dead-letter-source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("dead-letter-consumer", self.consumer_group.encode()),
        ]
        meta = await self._producer.send_and_wait(
            self._topic, record.value, key=record.key, headers=headers
        )
        if self._durability is not None:
            appended = Appended(
                meta.topic,
                meta.partition,
                meta.offset,
                meta.timestamp,
                record.key,
                record.value,
                headers,
            )
            await self._durability.appended([appended])
        self.count += 1
        DEAD_LETTERS.labels(self.consumer_group).inc()
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
