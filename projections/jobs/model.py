"""Where the jobs read model lives: one pointer document names its collection, and a replay
swaps a rebuilt model in by changing that document (one write), not by renaming a
collection (which a store may do by copying every document: SecantusDB does, under the lock
every reader waits for).

The pointer, `read_models/jobs`: {collection, generation, since, caught_up}. Without one the
model is the collection `jobs` (generation 0, as it was before pointers).

Readers and writers look the pointer up again once it is older than POINTER_TTL_S, so for a
moment after a swap some still read the old model; it stays whole until they have all moved
(replay.py `retire_grace_s`), then its jobs are deleted a slice at a time.

Writers are fenced by the store, not by that timing: the swap, in the transaction that
changes the pointer, marks every count document of the old model retired, and every write to
a model changes one of its count documents in its own transaction (store.py `_write_counted`). A
write to the old model that commits after the swap is therefore impossible: it conflicts
with the swap (and is run again) or finds the document retired and raises ModelRetired, and
the writer looks the pointer up and writes to the new model (`ReadModel.write`). What reached
the old model before the swap is in the log before the swap, and the swap's catch-up applies
it to the new model from `since` (`caught_up` once done; a projection that starts and finds
a swap not caught up, its replay killed half-way, finishes it: projections/jobs/replay.py).
The old model's count documents stay behind as a tombstone with the fence; the next swap
drops the tombstones of models older than the one it retires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from projections.jobs.store import (
    COUNT_SHARDS,
    RETIRED,
    SHAPES,
    ModelRetired,
    MongoJobViews,
    allocate,
)
from runtime.store import Document

log = logging.getLogger(__name__)
T = TypeVar("T")

MODELS = "read_models"  # {_id: a model's name, collection, generation, since, caught_up}
GENERATIONS = "~generations"  # {_id: GENERATIONS, <model name>: the last generation given}
NAME = "jobs"
#: How long a process uses what it read of the pointer before reading it again.
POINTER_TTL_S = 1.0


class SwapConflict(RuntimeError):
    """Another replay swapped its model in since this one began."""


@dataclass(frozen=True)
class Located:
    collection: str
    generation: int
    #: Per partition of the jobs topic, where the log is known to be in this model up to.
    since: Mapping[int, int]
    #: Whether what reached the model it replaced before the swap has been applied here too.
    caught_up: bool

    @staticmethod
    def of(doc: Mapping[str, Any] | None) -> Located:
        if doc is None:
            return LEGACY
        return Located(
            collection=doc["collection"],
            generation=doc["generation"],
            since={int(p): int(o) for p, o in (doc.get("since") or {}).items()},
            caught_up=bool(doc.get("caught_up", True)),
        )


LEGACY = Located(NAME, 0, {}, True)


class ReadModel:
    """The jobs read model wherever the pointer says it is now (read again after
    POINTER_TTL_S, or at once when asked)."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        ttl_s: float = POINTER_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self._ttl_s = ttl_s
        self._clock = clock
        self._located: Located | None = None
        self._read_at = 0.0
        self._reading: asyncio.Task[Located] | None = None  # shared by those who wait
        self._views: MongoJobViews | None = None

    async def located(self, fresh: bool = False) -> Located:
        """Where the model is: as read less than the TTL ago, or read now (`fresh`: by
        this call; otherwise one read for all the calls that find the last one too old)."""
        if fresh:
            return await self._read()
        if self._located is not None and self._clock() - self._read_at < self._ttl_s:
            return self._located
        if self._reading is None:
            self._reading = asyncio.create_task(self._read())
            self._reading.add_done_callback(self._read_done)
        return await asyncio.shield(self._reading)

    async def _read(self) -> Located:
        read_at = self._clock()
        located = Located.of(await self.db[MODELS].find_one({"_id": NAME}))
        if self._located is None or located.generation >= self._located.generation:
            self._located, self._read_at = located, read_at
        return self._located

    def _read_done(self, task: asyncio.Task[Located]) -> None:
        self._reading = None
        if not task.cancelled():
            task.exception()  # (retrieved: every waiter may have been cancelled meanwhile)

    async def views(self, fresh: bool = False) -> MongoJobViews:
        located = await self.located(fresh)
        if self._views is None or self._views.collection.name != located.collection:
            self._views = MongoJobViews(self.db[located.collection])
        return self._views

    async def write(self, write: Callable[[MongoJobViews], Awaitable[T]]) -> T:
        """`write` to the model, and to the one that replaced it if it was retired
        meanwhile (every write that did not commit before the swap is written again)."""
        views = await self.views()
        while True:
            try:
                return await write(views)
            except ModelRetired:
                now = await self.views(fresh=True)
                if now is views:  # the pointer names a retired model: not a swap's doing
                    raise
                log.info(
                    "read model swapped; writing to the new one",
                    extra={"collection": now.collection.name},
                )
                views = now

    async def allocate(self, count: int) -> range:
        return await allocate(self.db, count)  # (the database's counter: no pointer read)


async def next_generation(db: AsyncDatabase[Document]) -> int:
    counter = await db[MODELS].find_one_and_update(
        {"_id": GENERATIONS},
        {"$inc": {NAME: 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert counter is not None  # upserted
    return int(counter[NAME])


def collection_of(generation: int) -> str:
    return f"{NAME}_g{generation}"


async def swap(db: AsyncDatabase[Document], old: Located, new: Located) -> None:
    """Point at `new` instead of `old` and retire `old`'s writers, in one transaction (run
    again while it conflicts with a writer's). Raises SwapConflict if the pointer no longer
    names `old`."""
    async with db.client.start_session() as session:
        await session.with_transaction(lambda session: _swap(db, old, new, session))


async def _swap(
    db: AsyncDatabase[Document], old: Located, new: Located, session: AsyncClientSession
) -> None:
    pointer = {
        "collection": new.collection,
        "generation": new.generation,
        "since": {str(p): o for p, o in new.since.items()},
        "caught_up": new.caught_up,
    }
    models = db[MODELS]
    if old.generation == 0:
        try:
            await models.insert_one({"_id": NAME, **pointer}, session=session)
        except DuplicateKeyError:
            raise SwapConflict("another replay swapped its model in meanwhile") from None
    else:
        guard = {"_id": NAME, "generation": old.generation}
        if (await models.update_one(guard, {"$set": pointer}, session=session)).matched_count != 1:
            raise SwapConflict("another replay swapped its model in meanwhile")
    retired = db[old.collection]
    for shard in COUNT_SHARDS:
        await retired.update_one(
            {"_id": shard}, {"$set": {RETIRED: True}}, upsert=True, session=session
        )


async def mark_caught_up(db: AsyncDatabase[Document], located: Located) -> None:
    await db[MODELS].update_one(
        {"_id": NAME, "generation": located.generation}, {"$set": {"caught_up": True}}
    )


async def remove_retired(db: AsyncDatabase[Document], retired: Located, grace_s: float) -> int:
    """After `grace_s`, delete the retired model's jobs a slice at a time (store.py
    `delete_jobs`), leaving its retired count documents (the fence); drop the tombstones of
    models retired before it. How many jobs it deleted."""
    await asyncio.sleep(grace_s)
    deleted = await MongoJobViews(db[retired.collection]).delete_jobs()
    await db[SHAPES].delete_one({"_id": retired.collection})
    for name in await db.list_collection_names():
        if _generation(name) < retired.generation:  # (a scratch of a replay under way is newer)
            await db[name].drop()
            await db[SHAPES].delete_one({"_id": name})
    return deleted


def _generation(collection: str) -> int:
    """The generation a collection of this model holds; a huge number for other collections."""
    if collection == NAME:
        return 0
    prefix = collection_of(0)[:-1]
    digits = collection.removeprefix(prefix)
    return int(digits) if collection.startswith(prefix) and digits.isdigit() else 1 << 62
