"""The embedded broker keeps its log in memory; this keeps the log in the store.

`jobline run` (embedded broker only) archives every record of the events and dead-letter
topics into the store as it is written (topic, partition, offset, key, headers, value,
timestamp), plus each consumer group's committed offsets, capped at what is archived. On the
next start, before any processor runs, an empty broker is refilled from the archive at the
same offsets and the groups' offsets are restored. A create is acknowledged only once its
record is archived, so no acknowledged job is lost; processors act only on archived records
(a job the restored log lacks never reaches the read model), and what they appended but was
not archived before a stop, they derive again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from bson import Binary
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from runtime.aio import raise_if_cancelled, shielded
from runtime.backoff import ChunkSize, Retry, write_chunked
from runtime.eventlog import GAP_HEADER, Appended, Durability, start_client
from runtime.logreader import LogReader
from runtime.settings import Settings
from runtime.store import Document, insert_new

log = logging.getLogger(__name__)
RECORDS, GROUPS = "log_archive", "log_archive_groups"
GROUP_SNAPSHOT_S = 0.5
ARCHIVE_DOCS = 1000  # most records per archive write


class ArchiveMismatch(RuntimeError):
    """The broker's log and the archive disagree; starting would lose or skip events."""


class ArchivedOffsets:
    """Which offsets of one partition are archived: all below `end`, and `ahead` (written
    through by the producers that appended them, before the archiver reached them)."""

    def __init__(self, end: int = 0) -> None:
        self.end = end
        self.ahead: set[int] = set()

    def __contains__(self, offset: int) -> bool:
        return offset < self.end or offset in self.ahead

    def add(self, offset: int) -> None:
        if offset >= self.end:
            self.ahead.add(offset)
            self._advance()

    def reached(self, end: int) -> None:
        """The archiver has read this partition up to `end` (every record below it is
        archived, whatever offsets the log skips)."""
        if end > self.end:
            self.end = end
            self.ahead = {o for o in self.ahead if o >= end}
            self._advance()

    def _advance(self) -> None:
        while self.end in self.ahead:
            self.ahead.remove(self.end)
            self.end += 1


class LogArchive:
    """`groups`: the consumer groups whose committed offsets are kept with the log."""

    def __init__(
        self, settings: Settings, db: AsyncDatabase[Document], groups: Sequence[str]
    ) -> None:
        self._settings = settings
        self._group_names = list(groups)
        self._records = db[RECORDS]
        self._groups = db[GROUPS]
        self._topics = (settings.topics.jobs, settings.topics.dead_letters)
        self._archived: dict[tuple[str, int], ArchivedOffsets] = {}
        self._progress = asyncio.Condition()
        self._chunk = ChunkSize(ARCHIVE_DOCS)
        self._retry = Retry(log, "cannot archive records; retrying")

    @property
    def groups(self) -> list[str]:
        return self._group_names

    async def archived_ends(self) -> dict[tuple[str, int], int]:
        """The next offset to archive, per topic partition: one past the last archived."""
        pipeline = [
            {"$group": {"_id": {"t": "$topic", "p": "$partition"}, "last": {"$max": "$offset"}}}
        ]
        return {
            (row["_id"]["t"], row["_id"]["p"]): row["last"] + 1
            async for row in await self._records.aggregate(pipeline)
        }

    # -- restore ------------------------------------------------------------------------

    async def restore(self) -> int:
        """Refill an empty broker from the archive; restore group offsets. Returns records
        restored. Raises ArchiveMismatch, saying what is wrong, rather than skip anything."""
        await self._records.create_index(
            [("topic", ASCENDING), ("partition", ASCENDING), ("offset", ASCENDING)]
        )
        archived = await self.archived_ends()
        restored = 0
        ends: dict[tuple[str, int], int] = {}
        for topic in self._topics:
            broker_ends = await _log_ends(self._settings, topic)
            for partition, held in broker_ends.items():
                want = archived.get((topic, partition), 0)
                if held == 0 and want > 0:
                    restored += await self._refill(topic, partition, want)
                elif 0 < held < want:
                    raise ArchiveMismatch(
                        f"{topic}/{partition} holds offsets up to {held} but the archive holds "
                        f"up to {want}: the broker lost part of its log; refusing to start"
                    )
                ends[(topic, partition)] = max(held, want)
            missing = {p for (t, p) in archived if t == topic} - set(broker_ends)
            if missing:
                raise ArchiveMismatch(f"{topic} lacks partitions {sorted(missing)} the archive has")
        self._archived = {tp: ArchivedOffsets(end) for tp, end in ends.items()}
        await self._restore_groups(ends)
        return restored

    async def _refill(self, topic: str, partition: int, end: int) -> int:
        producer = AIOKafkaProducer(bootstrap_servers=self._settings.bootstrap_servers, acks="all")
        await start_client(producer, producer.stop)
        try:
            expected = 0
            cursor = self._records.find({"topic": topic, "partition": partition}).sort(
                "offset", ASCENDING
            )
            async for batch in _chunks(cursor, 500):
                # An offset the archive lacks held a record whose producer died before it
                # wrote it through: never acknowledged as done, derived again (a processor's)
                # or retried (a creation's). A placeholder keeps every later record at its
                # offset; consumers skip it.
                records: list[Document] = []
                for doc in batch:
                    while expected + len(records) < doc["offset"]:
                        records.append(_gap(expected + len(records)))
                    records.append(doc)
                sent = [
                    await producer.send(
                        topic,
                        bytes(doc["value"]) if doc["value"] is not None else None,
                        key=bytes(doc["key"]) if doc["key"] is not None else None,
                        headers=[(k, bytes(v)) for k, v in doc["headers"]],
                        partition=partition,
                        timestamp_ms=doc["timestamp"],
                    )
                    for doc in records
                ]
                for doc, metadata in zip(records, await asyncio.gather(*sent), strict=True):
                    if doc["offset"] != expected or metadata.offset != expected:
                        raise ArchiveMismatch(
                            f"{topic}/{partition}: archived offset {doc['offset']} came back as "
                            f"{metadata.offset} (expected {expected})"
                        )
                    expected += 1
        finally:
            await shielded(producer.stop())
        log.info("restored %s records of %s/%s from the archive", end, topic, partition)
        return end

    async def _restore_groups(self, ends: dict[tuple[str, int], int]) -> None:
        jobs = self._settings.topics.jobs
        async for doc in self._groups.find():
            offsets = {int(p): o for p, o in doc["offsets"].items()}
            past = {p: o for p, o in offsets.items() if o > ends.get((jobs, p), 0)}
            if past:
                raise ArchiveMismatch(
                    f"group {doc['_id']} has checkpoints past the end of the log "
                    f"(partition: checkpoint) {past}; ends are "
                    f"{ {p: ends.get((jobs, p), 0) for p in past} }. The log was reset without "
                    "its archive: refusing to start rather than skip events"
                )
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers,
                group_id=doc["_id"],
                enable_auto_commit=False,
            )
            await start_client(consumer, consumer.stop)
            try:
                tps = {TopicPartition(jobs, p): o for p, o in offsets.items()}
                consumer.assign(list(tps))
                await consumer.commit(tps)
            finally:
                await shielded(consumer.stop())

    # -- archive ------------------------------------------------------------------------

    async def run(self) -> None:
        """Archive records as they are written, and group offsets every half second."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            max_poll_records=1000,
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.bootstrap_servers)
        await start_client(consumer, consumer.stop)
        try:
            await start_client(admin, admin.close)
            await self._assign(consumer)
            snapshot_at = 0.0
            while True:
                raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
                fetched = await consumer.getmany(timeout_ms=100)
                await self._store(r for records in fetched.values() for r in records)
                if time.monotonic() >= snapshot_at:
                    await self._snapshot_groups(admin)
                    snapshot_at = time.monotonic() + GROUP_SNAPSHOT_S
        finally:
            await shielded(consumer.stop())
            await shielded(admin.close())

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()
        tps = [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, self._offsets(tp.topic, tp.partition).end)

    async def _store(self, records: Iterable[Any]) -> None:
        """Archive what the log holds that is not archived yet, retrying (in smaller writes,
        after growing pauses) until the store takes it: a slow or absent store delays
        acknowledgements, never ends this."""
        fetched = list(records)
        docs = [_doc(r) for r in fetched if r.offset not in self._offsets(r.topic, r.partition)]
        await self._write(docs, self._retry)
        async with self._progress:
            for record in fetched:
                self._offsets(record.topic, record.partition).reached(record.offset + 1)
            self._progress.notify_all()

    async def _write(self, docs: list[Document], retry: Retry | None) -> None:
        async def write(start: int, end: int) -> None:
            chunk = docs[start:end]
            # Some may be archived already (by their producer, or before a restart): the
            # same records, left as they are.
            await insert_new(self._records, chunk)
            async with self._progress:
                for doc in chunk:
                    self._offsets(doc["topic"], doc["partition"]).add(doc["offset"])
                self._progress.notify_all()

        await write_chunked(len(docs), self._chunk, write, retry)

    def _offsets(self, topic: str, partition: int) -> ArchivedOffsets:
        return self._archived.setdefault((topic, partition), ArchivedOffsets())

    # -- Durability: what producers and consumers of the embedded log call ----------------

    async def appended(self, records: Sequence[Appended]) -> None:
        """Archive records a producer has just appended (write-through: one insert for the
        batch, without waiting for the archiver to read them); raises if the store fails."""
        await self._write([_doc(r) for r in records], None)

    async def archived(self, records: Sequence[Any]) -> None:
        """Return once every one of these records (topic, partition, offset) is archived."""
        async with self._progress:
            await self._progress.wait_for(
                lambda: all(r.offset in self._offsets(r.topic, r.partition) for r in records)
            )

    def batched(self) -> Durability:
        """The same durability without writes of its own: an append counts once the
        archiver, which stores whatever it reads in one write, has stored it. For the
        processors, whose appends wait on nobody: one store write for many of them is worth
        the archiver's tens of milliseconds. A creation is answered sooner by writing
        through (`appended`)."""
        return _Batched(self)

    async def _snapshot_groups(self, admin: AIOKafkaAdminClient) -> None:
        jobs = self._settings.topics.jobs
        tps = [TopicPartition(jobs, p) for (t, p) in self._archived if t == jobs]
        ops = []
        for group in self.groups:
            with suppress(Exception):  # a group that has not committed yet has nothing to keep
                committed = await admin.list_consumer_group_offsets(group, partitions=tps)
                offsets = {
                    str(tp.partition): min(meta.offset, self._offsets(jobs, tp.partition).end)
                    for tp, meta in committed.items()
                    if meta.offset >= 0
                }
                if offsets:
                    ops.append(
                        UpdateOne({"_id": group}, {"$set": {"offsets": offsets}}, upsert=True)
                    )
        if ops:
            try:
                await self._groups.bulk_write(ops)
            except PyMongoError as error:  # the next snapshot writes them again
                log.warning("cannot archive group offsets", extra={"error": repr(error)})


class _Batched:
    def __init__(self, archive: LogArchive) -> None:
        self._archive = archive

    async def appended(self, records: Sequence[Appended]) -> None:
        await self._archive.archived(records)

    async def archived(self, records: Sequence[Any]) -> None:
        await self._archive.archived(records)


def _gap(offset: int) -> Document:
    # A record needs a key or a value: a key that no job has.
    return {
        "offset": offset,
        "key": GAP_HEADER.encode(),
        "value": None,
        "headers": [[GAP_HEADER, b""]],
        "timestamp": None,
    }


def _doc(record: Any) -> Document:
    return {
        "_id": f"{record.topic}/{record.partition}/{record.offset}",
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": Binary(record.key) if record.key is not None else None,
        "value": Binary(record.value) if record.value is not None else None,
        "headers": [[k, Binary(v)] for k, v in record.headers or ()],
    }


async def _log_ends(settings: Settings, topic: str) -> dict[int, int]:
    reader = LogReader(settings, topic)
    async for _ in reader.batches():
        pass  # an emptied broker has nothing to read; a kept one is read once, to its end
    return dict(reader.ends)


async def _chunks(cursor: Any, size: int) -> Any:
    batch: list[Document] = []
    async for doc in cursor:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
