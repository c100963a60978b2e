"""Feeds the read model from the log: one bulk write per fetched batch, then commit."""

from __future__ import annotations

import asyncio
import logging
import time

from pymongo.errors import PyMongoError

from projections.jobs.model import Located, ReadModel, remove_retired
from projections.jobs.replay import finish_swap, replay, retire_grace_s
from projections.jobs.store import SHAPE
from runtime.aio import cancel_all
from runtime.backoff import Retry
from runtime.clock import utc_now
from runtime.consuming import Consumed
from runtime.eventlog import Durability
from runtime.metrics import PROJECTION_EVENT_AGE, PROJECTION_WRITE_SECONDS
from runtime.offsets import OffsetTracker
from runtime.processor import processor_kit
from runtime.settings import Settings
from runtime.store import database, open_store

log = logging.getLogger(__name__)
#: The projection's name: its command, and its consumer group's suffix.
PROJECTION = "projection"


class ProjectionHandler:
    def __init__(self, model: ReadModel, tracker: OffsetTracker, topic: str) -> None:
        self._model = model
        self._tracker = tracker
        self._topic = topic
        self._retry = Retry(log, "read model write failed; retrying")

    async def handle(self, batch: list[Consumed]) -> None:
        # The store down, failing or slow: the batch is kept (its offsets stay held) and
        # retried after growing pauses, in smaller writes (runtime/backoff.py).
        # To the model swapped in, if a replay swapped one in meanwhile (model.py).
        events = [item.event for item in batch]
        started = time.monotonic()
        await self._model.write(lambda views: views.apply(events, self._retry))
        PROJECTION_WRITE_SECONDS.observe(time.monotonic() - started)
        committed = utc_now()
        for event in events:
            PROJECTION_EVENT_AGE.observe(max(0.0, (committed - event.occurred_at).total_seconds()))
        for item in batch:
            self._tracker.release(item.partition, item.offset)
        if batch:
            last = batch[-1]
            log.debug("projected batch", extra={**last.log_fields(self._topic), "size": len(batch)})

    async def revoked(self, partitions: set[int]) -> None:
        """Nothing to finish: a batch being written keeps its offsets held, and the commit
        on hand-over stops short of them."""


async def run(settings: Settings, durability: Durability | None = None, *, name: str) -> None:
    """The jobs projection, until cancelled, as consumer group `<prefix>.<name>` (it appends
    only dead letters)."""
    client = open_store(settings, component="projection")
    removing: asyncio.Task[None] | None = None
    try:
        model = ReadModel(database(client, settings))
        if await (await model.views()).prepare():
            retired = await rebuild_stale(settings)
            if retired is not None:  # deleted while this projects
                removing = asyncio.create_task(_remove(model, retired, settings))
        await finish_swap(settings, model)
        async with processor_kit(settings, name, durability) as kit:
            await kit.loop.run(ProjectionHandler(model, kit.tracker, kit.topic))
    finally:
        if removing is not None:
            await cancel_all(removing)
        await client.close()


async def rebuild_stale(settings: Settings) -> Located | None:
    """The stored documents predate this code's shape: rebuild them from the log before
    projecting (the API keeps serving the old ones until the atomic swap). The model
    swapped out, its jobs not deleted yet (that is for the caller, not to hold it up)."""
    log.warning("read model is of an older shape; rebuilding it from the log")
    done = await replay(settings, lambda done, total: None, remove_old=False)
    log.warning(
        "read model rebuilt",
        extra={"events": done.events, "documents": done.documents, "shape": SHAPE},
    )
    return done.retired


async def _remove(model: ReadModel, retired: Located, settings: Settings) -> None:
    try:
        deleted = await remove_retired(model.db, retired, retire_grace_s(settings))
    except PyMongoError as error:  # (left for the next replay, which drops it whole)
        log.warning("could not delete the old read model", extra={"error": repr(error)})
    else:
        log.info("deleted the old read model", extra={"jobs": deleted})
