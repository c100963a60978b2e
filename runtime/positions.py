"""Where the log ends and where each consumer group stands in it: consumer lag, read the way
`kafka-consumer-groups --describe` reads it (the group's committed offsets against the
partitions' ends), for `jobline status` and `/readyz`.

The ends are high watermarks taken from a fetch, not from ListOffsets: the embedded broker
answers ListOffsets with the last batch's base offset + 1 (DESIGN.md §4), while a fetch's high
watermark is right on every broker. So a consumer of no group seeks near each end, fetches
once, and reads the watermark the broker sent with the answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from runtime.aio import shielded
from runtime.eventlog import start_client
from runtime.settings import Settings

#: Bytes a probe's fetch brings per partition: it wants the watermark, not the records.
PROBE_FETCH_BYTES = 1024
FETCH_WAIT_MS = 200


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group has committed nothing here yet
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.committed or 0))


class LogPositions:
    """An admin client and a probe consumer, opened once and reused."""

    def __init__(self, settings: Settings, client_id: str = "jobline-positions") -> None:
        servers = settings.bootstrap_servers
        self._admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id=client_id)
        self._probe = AIOKafkaConsumer(
            bootstrap_servers=servers,
            client_id=client_id,
            enable_auto_commit=False,
            max_partition_fetch_bytes=PROBE_FETCH_BYTES,
            fetch_max_bytes=PROBE_FETCH_BYTES,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        self._lock = asyncio.Lock()  # one probe's assignment at a time

    async def start(self, wait_s: float = 30) -> None:
        await start_client(self._admin, self._admin.close, wait_s)
        try:
            await start_client(self._probe, self._probe.stop, wait_s)
        except BaseException:
            await shielded(self._admin.close())
            raise

    async def close(self) -> None:
        await shielded(self._probe.stop())
        await shielded(self._admin.close())

    async def reachable(self) -> None:
        """Returns once the broker answered a metadata request (raises if it cannot)."""
        await self._admin.describe_cluster()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions, as the broker's metadata says now (none: no such topic)."""
        described = await self._admin.describe_topics([topic])
        numbers = [
            p["partition"] for t in described if t["topic"] == topic for p in t["partitions"]
        ]
        return [TopicPartition(topic, p) for p in sorted(numbers)]

    async def ends(self, topic: str) -> dict[int, int]:
        """Each partition's high watermark: the offset the next record will get."""
        async with self._lock:
            tps = await self.partitions(topic)
            if not tps:
                return {}
            self._probe.assign(tps)  # afresh: no watermark of an earlier probe is kept
            try:
                listed = await self._probe.end_offsets(tps)
                for tp in tps:
                    self._probe.seek(tp, max(0, listed[tp] - 1))
                while any(self._probe.highwater(tp) is None for tp in tps):
                    await self._probe.getmany(*tps, timeout_ms=FETCH_WAIT_MS)
                return {tp.partition: self._probe.highwater(tp) for tp in tps}
            finally:
                self._probe.pause(*tps)  # no fetching ahead between probes

    async def lags(self, group: str, topic: str) -> list[PartitionLag]:
        ends = await self.ends(topic)
        tps = [TopicPartition(topic, p) for p in ends]
        committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
        return [
            PartitionLag(tp.partition, _offset(committed.get(tp)), ends[tp.partition]) for tp in tps
        ]

    async def group(self, group: str) -> tuple[str, int]:
        """The group's state as its coordinator says (`Stable`, `PreparingRebalance`,
        `Empty`, ...) and how many consumers are in it."""
        (described,) = await self._admin.describe_consumer_groups([group])
        (state,) = {str(g[2]) for g in described.groups} or {"Dead"}
        return state, sum(len(g[5]) for g in described.groups)


def _offset(meta: object) -> int | None:
    offset = getattr(meta, "offset", -1)
    return offset if isinstance(offset, int) and offset >= 0 else None
