"""Live job changes: one change stream per API process, fanned out to subscribers.

Each subscriber has a bounded queue. One that falls behind is dropped with an error (it then
resubscribes and resyncs from a query) instead of slowing everyone else down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from api.board import Board
from projections.jobs.store import MongoJobViews, from_document, is_counts
from projections.jobs.view import JobView
from runtime.store import Document

log = logging.getLogger(__name__)
RECONNECT_S = 1.0
# ChangeStreamFatalError, ChangeStreamHistoryLost: resuming from our token is impossible.
RESUME_POINT_LOST = {280, 286}


class SubscriberTooSlow(Exception):
    def __init__(self) -> None:
        super().__init__("updates came faster than this subscriber read them; resubscribe")


_OVERFLOW = object()


class Subscription:
    def __init__(self, job_id: str | None, size: int) -> None:
        self.job_id = job_id
        self.queue: asyncio.Queue[Any] = asyncio.Queue(size)

    def offer(self, view: JobView) -> bool:
        try:
            self.queue.put_nowait(view)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_OVERFLOW)
            return False
        return True

    async def __aiter__(self) -> AsyncIterator[JobView]:
        while True:
            item = await self.queue.get()
            if item is _OVERFLOW:
                raise SubscriberTooSlow
            yield item


class JobFeed:
    def __init__(
        self,
        collection: AsyncCollection[Document],
        queue_size: int = 256,
        on_change: Callable[[], None] = lambda: None,
        board: Board | None = None,
        views: MongoJobViews | None = None,
    ) -> None:
        """`on_change` is called after each change, and whenever changes may have been
        missed (the stream was (re)opened), for state derived from all jobs. With a
        `board`, it is loaded from `views` (the store) each time the stream opens and
        changed by every change after that (api/board.py)."""
        self._collection = collection
        self._queue_size = queue_size
        self._on_change = on_change
        self._board = board
        self._views = views
        self._subscriptions: set[Subscription] = set()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        token = None
        while True:
            try:
                async with await self._collection.watch(
                    full_document="updateLookup", resume_after=token
                ) as stream:
                    self.ready.set()
                    self._on_change()
                    await self._load_board()
                    async for change in stream:
                        if change["operationType"] == "invalidate":
                            # The collection was replaced (jobline replay swapped in a rebuilt
                            # one): our resume token is void; watch the new one from now.
                            token = None
                            break
                        token = stream.resume_token
                        doc = change.get("fullDocument")
                        if doc is not None:
                            self._changed(doc, change["operationType"] == "insert")
                        self._on_change()
                if self._board is not None:
                    self._board.reset()
            except PyMongoError as error:
                if self._board is not None:
                    self._board.reset()
                if getattr(error, "code", None) in RESUME_POINT_LOST:
                    token = None  # the server no longer has our place; start from now
                log.warning("change stream lost; reconnecting", extra={"error": repr(error)})
                await asyncio.sleep(RECONNECT_S)

    async def _load_board(self) -> None:
        """The stream is open (nothing written from now on is missed): load the board."""
        if self._board is None or self._views is None:
            return  # (not live until loaded: a stream that ended reset it)
        views, complete, shards = await self._views.snapshot(self._board.size)
        self._board.load(views, complete, shards)
        log.info("board loaded", extra={"jobs": len(self._board), "complete": complete})

    def _changed(self, doc: Document, inserted: bool) -> None:
        if is_counts(doc):
            if self._board is not None:
                self._board.counted(doc, inserted)
            return
        view = from_document(doc)
        if self._board is not None:  # first: a subscriber told of a change can read it
            self._board.add(view)
        self._fan_out(view)

    def _fan_out(self, view: JobView) -> None:
        for subscription in list(self._subscriptions):
            if subscription.job_id not in (None, view.id):
                continue
            if not subscription.offer(view):
                self._subscriptions.discard(subscription)
                log.warning("dropped a slow subscriber", extra={"job_id": subscription.job_id})

    @asynccontextmanager
    async def subscribe(self, job_id: str | None = None) -> AsyncIterator[Subscription]:
        subscription = Subscription(job_id, self._queue_size)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
