"""The embedded log's archive, on the real broker and store."""

from __future__ import annotations

from typing import Any

from bson import Binary
from pymongo import AsyncMongoClient

from jobline.components import groups
from runtime.archive import RECORDS, LogArchive
from runtime.clock import utc_now
from runtime.eventlog import ensure_topics, is_gap
from runtime.settings import Settings
from runtime.store import database, open_store
from schema import encode, headers_for
from tests.logread import read_events, read_topic
from tests.unit.events import job_life


async def test_a_restore_keeps_offsets_across_a_record_nobody_archived(
    settings: Settings,
) -> None:
    """Producers archive what they append themselves, so a kill can leave a hole: offset 2
    was appended (by a processor, say) but not yet written through, while offset 3 (a
    creation) was. The restored log keeps every archived record at its offset, with a
    placeholder at 2 that readers skip."""
    settings = settings.model_copy(update={"topic_partitions": 1})
    events = [e for n in range(2) for e in job_life(f"job-{n}", utc_now())[:2]]
    topic = settings.topics.jobs
    docs = [
        {
            "_id": f"{topic}/0/{offset}",
            "topic": topic,
            "partition": 0,
            "offset": offset,
            "timestamp": 1_700_000_000_000 + offset,
            "key": Binary(event.job_id.encode()),
            "value": Binary(encode(event)),
            "headers": [[k, Binary(v)] for k, v in headers_for(event)],
        }
        for offset, event in enumerate(events)
        if offset != 2
    ]
    client: AsyncMongoClient[dict[str, Any]] = open_store(settings)
    try:
        await database(client, settings)[RECORDS].insert_many(docs)
        await ensure_topics(settings)
        restored = await LogArchive(
            settings, database(client, settings), groups(settings)
        ).restore()
    finally:
        await client.close()

    assert restored == 4
    records = await read_topic(settings, topic)
    assert [r.offset for r in records] == [0, 1, 2, 3]
    assert [is_gap(r) for r in records] == [False, False, True, False]
    assert [r.value for r in records if not is_gap(r)] == [bytes(d["value"]) for d in docs]
    assert await read_events(settings) == [e for i, e in enumerate(events) if i != 2]
