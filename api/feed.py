"""Live job changes: one change stream per API process, fanned out to subscribers.

Each subscriber has a bounded queue. One that falls behind is dropped with an error (it then
resubscribes and resyncs from a query) instead of slowing everyone else down.

Every change carries its position: the change stream's resume token (its `_data`), opaque to
clients. A subscriber that comes back with the last position it got (`updates(since=…)`)
first reads the changes after it from the store's change history on a stream of its own,
then the shared live ones: it is registered for those before its own stream opens, so none
falls between the two, and a live change the history already gave is not passed on again,
so none comes twice. (Positions are compared only for equality: a store's resume tokens are
opaque, and the embedded store's do not sort as strings. The live changes the history also
gave are the last it read, and no more than a subscriber's queue holds, so the positions of
that many suffice.) A position the history no longer holds is
refused (`PositionTooOld`): the client re-reads, then subscribes from now. The history
shows a changed job as it is when the change is read (MongoDB's `updateLookup`), so several
changes of one job missed together can come as one, its latest state: never an older one.

When `jobline replay` swaps a rebuilt model in (projections/jobs/model.py), the feed watches
the new model's changes from then on, within a second, and subscriptions go on. A position
names the model whose history it is in (its generation), so one from before a swap is
refused as too old, whatever a store would make of another collection's resume token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from api.board import Board
from api.errors import CallerError, InvalidInput
from projections.jobs.model import LEGACY, Located, ReadModel
from projections.jobs.store import from_document, is_counts
from projections.jobs.view import JobView
from runtime.aio import raise_if_cancelled
from runtime.clock import utc_now
from runtime.metrics import FEED_DELAY, SUBSCRIBERS, SUBSCRIBERS_DROPPED
from runtime.store import Document

log = logging.getLogger(__name__)
RECONNECT_S = 1.0
# ChangeStreamFatalError, ChangeStreamHistoryLost: resuming from our token is impossible.
RESUME_POINT_LOST = {280, 286}


#: How long one read of a catching-up subscriber's own stream waits for more history.
CAUGHT_UP_WAIT_MS = 100
#: How long its stream may show nothing before the subscriber counts as caught up without
#: having seen where the live changes begin (the live changes are buffered meanwhile).
CATCH_UP_IDLE_S = 3.0
#: A resume token the store cannot read (FailedToParse, BadValue, InvalidBSON).
NOT_A_POSITION = {2, 9, 22}
#: How many jobs' versions a subscriber remembers, to pass on each version once.
REMEMBERED_JOBS = 4096
_POSITION = re.compile(r"(?:g([1-9][0-9]{0,17})\.)?([0-9A-Fa-f]{2,2000})")
#: How long the stream waits for a change before the feed looks whether the model was swapped.
CHECK_MS = 1000


class SubscriberTooSlow(Exception):
    #: As both faces label it (GraphQL's `extensions.code`, an SSE error event's `code`).
    code = "SUBSCRIBER_TOO_SLOW"

    def __init__(self) -> None:
        super().__init__("updates came faster than this subscriber read them; resubscribe")


class PositionTooOld(CallerError):
    """A resume position the store's change history no longer holds."""

    status_code = 410
    code = "POSITION_TOO_OLD"

    def __init__(self) -> None:
        super().__init__(
            "this position is older than the change history the store keeps (or the read "
            "model was rebuilt since): read the jobs again, then subscribe without one"
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A job's view as a change left it, and the position just after that change."""

    position: str
    view: JobView


class Subscription:
    """One subscriber's mailbox of changes, bounded: the feed offers each change to every
    subscriber (a thousand of them, many times a second), so it is lean: a deque, and a
    future only while the subscriber waits (asyncio.Queue cost a tenth of the API's CPU
    when it pushed to a thousand)."""

    def __init__(self, job_id: str | None, size: int, idle_s: float | None = None) -> None:
        """With `idle_s`, the subscriber is given None whenever no change came for that
        long (an SSE stream's cue for a keep-alive comment)."""
        self.job_id = job_id
        self.size = size
        self.idle_s = idle_s
        self._changes: deque[Change] = deque()
        self._waiter: asyncio.Future[bool] | None = None  # its result: whether it idled
        self._overflowed = False
        #: Takes a change at once, when the subscriber waits for one (see `offer`).
        self.sink: Callable[[Change], bool] | None = None

    def offer(self, change: Change) -> bool:
        """Whether the subscriber keeps up: False when it had `size` changes not yet read
        (they are dropped, and it is told so when it reads next).

        A subscriber waiting for its next change, with nothing unread, is given it through
        its `sink` if it has one, which writes it to the connection there and then
        (api/wire.py) instead of waking the subscriber's task: a thousand wake-ups per
        change, and the layers each passes, were half of the API's work pushing to a
        thousand subscribers. What the sink cannot take (False) is queued as usual, and so
        is everything after it until the subscriber has read it: its changes stay in order.
        """
        if self.sink is not None and self._waiting() and self.sink(change):
            return True
        if len(self._changes) >= self.size:
            self._changes.clear()
            self._overflowed = True
            self._wake()
            return False
        self._changes.append(change)
        self._wake()
        return True

    def _waiting(self) -> bool:
        """Whether the subscriber waits for its next change, with nothing unread."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._changes

    @property
    def unread(self) -> int:
        return len(self._changes)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(False)

    async def __aiter__(self) -> AsyncIterator[Change | None]:
        changes = self._changes
        loop = asyncio.get_running_loop()
        while True:
            while not changes:
                if self._overflowed:
                    raise SubscriberTooSlow
                waiter = self._waiter = loop.create_future()
                # A timer, not a task and asyncio.wait per change: a thousand SSE streams
                # each waited that way for every change, and it was most of their cost.
                timer = None if self.idle_s is None else loop.call_later(self.idle_s, _idle, waiter)
                try:
                    idled = await waiter
                finally:
                    self._waiter = None
                    if timer is not None:
                        timer.cancel()
                if idled:
                    yield None
            yield changes.popleft()


def _idle(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


class Updates:
    """One subscriber's changes: after its `since` position (from the history), then live."""

    def __init__(
        self,
        subscription: Subscription,
        history: AsyncChangeStream[Any] | None,
        since: str | None,
        start: str | None,
        generation: int = 0,
    ) -> None:
        self._subscription = subscription
        self._history = history
        self._generation = generation
        self._since = since
        self._versions: OrderedDict[str, int] = OrderedDict()
        #: The positions of the last changes the history gave (the live ones may repeat).
        self._given: deque[str] = deque(maxlen=subscription.size)
        #: The feed's position as the subscription began: what a snapshot read now is at.
        #: Every change after it reaches the subscription live.
        self.start = start

    def shown(self, view: JobView) -> None:
        """A job's state the subscriber was shown otherwise (the first one): not again."""
        self._seen(view)

    def write_with(self, write: Callable[[Change], bool]) -> None:
        """Have each live change that finds the subscriber waiting for one written at once
        by `write` (see Subscription.offer), which says whether it could; those it could
        not come through this iterator as usual. Changes this subscriber is not to get
        (seen already) are passed over either way."""

        def sink(change: Change) -> bool:
            if not self._is_news(change):
                return True
            try:
                return write(change)
            except Exception:  # (nothing written: the usual way meets it and says why)
                log.debug("could not write a change at once", exc_info=True)
                return False

        self._subscription.sink = sink

    async def __aiter__(self) -> AsyncGenerator[Change | None, None]:
        """The changes; None for a while without one, if the subscription was asked for
        that (`idle_s`)."""
        if self._history is not None:
            async for change in self._caught_up():
                news = self._is_news(change)
                self._given.append(change.position)
                if news:
                    self._seen(change.view)
                    yield change
        async for live in self._subscription:
            if live is None:
                yield None
            elif self._is_news(live):
                yield live

    def _is_news(self, change: Change) -> bool:
        """Whether the change shows a later version of its job than this subscriber was
        shown before it went live (its first state, the history's changes), and is not one
        the history gave it. (The feed passes each job's versions on live once each, in
        order: JobFeed._is_news.) Checked for every subscriber of every change: cheap when
        there is nothing to check."""
        versions, given = self._versions, self._given
        if versions and versions.get(change.view.id, 0) >= change.view.version:
            return False
        return not (given and change.position in given)

    def _seen(self, view: JobView) -> None:
        _remember(self._versions, view)

    async def _caught_up(self) -> AsyncIterator[Change]:
        """The history after `since`, the changes for this subscriber, up to the position
        where the live ones begin (`start`: every change after it is in the subscription).
        Should the history never show that position (this process's feed is behind the
        one that gave `since`), up to where it has had nothing more for CATCH_UP_IDLE_S:
        the live changes then include some the subscriber had, shown at most once each."""
        assert self._history is not None
        job_id = self._subscription.job_id
        loop = asyncio.get_running_loop()
        try:
            reached, idle_since = self._since == self.start, loop.time()
            while not reached:
                event = await self._history.try_next()
                if event is None:
                    reached = self.start is None or loop.time() - idle_since > CATCH_UP_IDLE_S
                    continue
                idle_since = loop.time()
                if event["operationType"] == "invalidate":  # the read model was swapped
                    raise PositionTooOld
                position = encode_position(event["_id"], self._generation)
                reached = position == self.start
                doc = event.get("fullDocument")
                if doc is not None and not is_counts(doc) and job_id in (None, doc["_id"]):
                    yield Change(position, from_document(doc))
        finally:
            await self._history.close()


class JobFeed:
    def __init__(
        self,
        model: ReadModel,
        streams: AsyncDatabase[Document],
        queue_size: int = 256,
        on_change: Callable[[], None] = lambda: None,
        board: Board | None = None,
    ) -> None:
        """The changes of the read model wherever `model` says it is (watched through
        `streams`, a database of a client whose reads are not cut short). `on_change` is
        called after each change, and whenever changes may have been missed (the stream was
        (re)opened), for state derived from all jobs. With a `board`, it is loaded from the
        model each time the stream opens and changed by every change after that
        (api/board.py)."""
        self._model = model
        self._streams = streams
        self._queue_size = queue_size
        self._on_change = on_change
        self._board = board
        self._subscriptions: set[Subscription] = set()
        self.ready = asyncio.Event()
        #: The position of the last change seen (or where the stream began).
        self.position: str | None = None
        #: The model watched (its positions are void in any other).
        self._located = LEGACY
        self._versions: OrderedDict[str, int] = OrderedDict()

    async def run(self) -> None:
        token = None
        while True:
            raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
            try:
                located = await self._model.located()
                if located.generation != self._located.generation:
                    token = None  # a new model: a new history
                async with await self._streams[located.collection].watch(
                    full_document="updateLookup", resume_after=token, max_await_time_ms=CHECK_MS
                ) as stream:
                    self._located = located
                    if stream.resume_token is not None:
                        self.position = encode_position(stream.resume_token, located.generation)
                    self.ready.set()
                    self._on_change()
                    await self._load_board()
                    while stream.alive:  # (closed: opened again, from its token)
                        change = await stream.try_next()
                        if change is not None:
                            if change["operationType"] == "invalidate":
                                token = None  # the collection is gone; watch from now
                                break
                            token = stream.resume_token
                            self.position = encode_position(change["_id"], located.generation)
                            doc = change.get("fullDocument")
                            if doc is not None:
                                inserted = change["operationType"] == "insert"
                                self._changed(doc, inserted, self.position)
                                _observe_delay(change)
                            self._on_change()
                        if (await self._model.located()).generation != located.generation:
                            break  # jobline replay swapped a rebuilt model in: watch it
                if self._board is not None:
                    self._board.reset()
            except PyMongoError as error:
                raise_if_cancelled()  # (see runtime.aio.retried)
                if self._board is not None:
                    self._board.reset()
                if getattr(error, "code", None) in RESUME_POINT_LOST:
                    token = None  # the server no longer has our place; start from now
                log.warning("change stream lost; reconnecting", extra={"error": repr(error)})
                await asyncio.sleep(RECONNECT_S)

    async def _load_board(self) -> None:
        """The stream is open (nothing written from now on is missed): load the board."""
        if self._board is None:
            return  # (not live until loaded: a stream that ended reset it)
        views, complete, shards = await (await self._model.views()).snapshot(self._board.size)
        self._board.load(views, complete, shards)
        log.info("board loaded", extra={"jobs": len(self._board), "complete": complete})

    def _changed(self, doc: Document, inserted: bool, position: str) -> None:
        if is_counts(doc):
            if self._board is not None:
                self._board.counted(doc, inserted)
            return
        view = from_document(doc)
        if self._board is not None:  # first: a subscriber told of a change can read it
            self._board.add(view)
        if self._is_news(view):
            self._fan_out(Change(position, view))

    def _is_news(self, view: JobView) -> bool:
        """Whether the change shows a later version of its job than the last one passed on.
        (A change stream looks an updated document up when it reads the change, so two
        changes read close together can show the same version; a write that changes no
        field of the view, too. The versions it shows never go back.) Remembered for the
        jobs changed most recently."""
        if self._versions.get(view.id, 0) >= view.version:
            return False
        _remember(self._versions, view)
        return True

    def _fan_out(self, change: Change) -> None:
        for subscription in list(self._subscriptions):
            if subscription.job_id not in (None, change.view.id):
                continue
            if not subscription.offer(change):
                self._subscriptions.discard(subscription)
                SUBSCRIBERS_DROPPED.inc()
                log.warning("dropped a slow subscriber", extra={"job_id": subscription.job_id})

    @asynccontextmanager
    async def updates(
        self, job_id: str | None = None, since: str | None = None, idle_s: float | None = None
    ) -> AsyncIterator[Updates]:
        """The changes of every job (or of one) from now, or after position `since` (and
        None after each `idle_s` without one, if given). Raises PositionTooOld, or
        InvalidInput for a position this API never gave."""
        located = self._located
        token = None
        if since is not None:
            generation, token = decode_position(since)
            if generation != located.generation:
                raise PositionTooOld  # a position in a model swapped out since
        subscription = Subscription(job_id, self._queue_size, idle_s)
        self._subscriptions.add(subscription)  # before the history: no change between
        start = self.position  # (no await since the line above: no change between)
        history = None
        SUBSCRIBERS.inc()
        try:
            if token is not None:
                history = await self._history_after(located, token)
            yield Updates(subscription, history, since, start, located.generation)
        finally:
            SUBSCRIBERS.dec()
            self._subscriptions.discard(subscription)
            if history is not None:
                await history.close()

    async def _history_after(
        self, located: Located, token: Mapping[str, Any]
    ) -> AsyncChangeStream[Any]:
        try:
            return await self._streams[located.collection].watch(
                full_document="updateLookup",
                resume_after=token,
                max_await_time_ms=CAUGHT_UP_WAIT_MS,
            )
        except OperationFailure as error:
            if error.code in RESUME_POINT_LOST:
                raise PositionTooOld from None
            if error.code in NOT_A_POSITION:
                raise InvalidInput("since is not a position this API gave") from None
            raise


def _observe_delay(change: Mapping[str, Any]) -> None:
    """FEED_DELAY of a change just passed on: from its commit (a store that stamps none
    leaves it unobserved)."""
    committed = change.get("wallTime")
    if isinstance(committed, datetime):
        FEED_DELAY.observe(max(0.0, (utc_now() - committed).total_seconds()))


def _remember(versions: OrderedDict[str, int], view: JobView) -> None:
    """A job's version, shown: remembered for the REMEMBERED_JOBS jobs changed last."""
    versions[view.id] = view.version
    versions.move_to_end(view.id)
    if len(versions) > REMEMBERED_JOBS:
        versions.popitem(last=False)


def encode_position(token: Mapping[str, Any], generation: int) -> str:
    """A change stream's resume token as a client sees it, an opaque string: its `_data`,
    after the generation of the model whose stream gave it (none for the first model)."""
    data = token["_data"]
    hexed = data if isinstance(data, str) else bytes(data).hex()
    return f"g{generation}.{hexed}" if generation else hexed


def decode_position(position: str) -> tuple[int, dict[str, Any]]:
    """The generation of the model a position is in, and the resume token."""
    found = _POSITION.fullmatch(position)
    if found is None:
        raise InvalidInput("since is not a position this API gave")
    generation, data = found.groups()
    return int(generation or 0), {"_data": data}
