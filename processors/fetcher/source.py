"""Photos for due jobs, several jobs to a request.

Jobs that fall due together wait together: one GET /photos/random with `count` (up to 30)
serves up to 30 of them, each with a photo of its own, so a burst of 300 due jobs costs 10
requests of the allowance, not 300. A request is sent once the allowance lets it (the shared
quota), and whatever jobs are waiting by then go with it, so the batches grow while the
allowance is spent. A photo is given to one job only: not twice from one answer, and not
one another job was given from another (`PhotoClaims`); jobs the answer has no photo for
wait for the next request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from processors.fetcher.quota import Quota
from processors.fetcher.unsplash import Unsplash
from runtime.aio import raise_if_cancelled, retried, wait_event
from runtime.clock import utc_now
from runtime.store import Document, insert_new
from schema import Photo

log = logging.getLogger(__name__)

#: Unsplash's largest `count`.
MAX_COUNT = 30
#: How long the first due job waits for others before its request goes (unless a
#: request's worth arrive first).
GATHER_S = 0.05
#: The same while the allowance is unknown.
FIRST_GATHER_S = 1.0
#: Before asking again for jobs whose request brought no photo new to jobline.
NOTHING_NEW_BACKOFF_S = 0.5
STORE_RETRY_S = 1.0


class PhotoSource:
    def __init__(
        self,
        unsplash: Unsplash,
        concurrency: int,
        quota: Quota | None = None,
        claims: PhotoClaims | None = None,
        gather_s: float = GATHER_S,
    ) -> None:
        """With a `quota`, a request is taken from the allowance before its jobs are, so
        that the jobs that fall due while it waits go with it. With `claims`, a photo
        another job was given before (another request brought it) is not given again."""
        self._unsplash = unsplash
        self._quota = quota
        self._claims = claims
        self._gather_s = gather_s
        self._waiting: list[asyncio.Future[Photo | str]] = []
        self._arrived = asyncio.Event()
        self._requests = asyncio.Semaphore(concurrency)  # requests to Unsplash at once
        self._tasks: set[asyncio.Task[None]] = set()

    def ask(self) -> asyncio.Future[Photo | str]:
        """A photo for one job, or the reason (for a person) why there is none, once a
        request brings it; `withdraw` takes the asking back while no request carries it."""
        wanted: asyncio.Future[Photo | str] = asyncio.get_running_loop().create_future()
        self._waiting.append(wanted)
        self._arrived.set()
        return wanted

    def withdraw(self, asked: Iterable[asyncio.Future[Photo | str]]) -> int:
        """Cancel those of `asked` that no request carries yet (a job handed over: its next
        owner asks, and no photo is fetched twice); the others are under way. How many."""
        waiting = set(self._waiting)
        withdrawn = [wanted for wanted in asked if wanted in waiting and not wanted.done()]
        for wanted in withdrawn:
            wanted.cancel()
        return len(withdrawn)

    async def run(self) -> None:
        """Send requests for the waiting jobs, until cancelled."""
        try:
            while True:
                raise_if_cancelled()  # a library may have swallowed it (runtime.aio)
                await self._arrived.wait()
                await self._gather()
                await self._requests.acquire()
                try:
                    if self._quota is not None:
                        await self._quota.acquire()
                except BaseException:
                    self._requests.release()
                    raise
                self._arrived.clear()
                batch = self._take(MAX_COUNT)
                if not batch:  # its jobs were let go meanwhile
                    if self._quota is not None:
                        await self._quota.release()
                    self._requests.release()
                    continue
                task = asyncio.create_task(self._serve(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                if self._waiting:
                    self._arrived.set()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _gather(self) -> None:
        """Let a burst of due jobs arrive: until a request's worth wait, or for `gather_s`
        (longer while the allowance is still unknown: one request goes out until an answer
        tells it, so it had better carry many jobs)."""
        unknown = self._quota is not None and self._quota.unknown
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (FIRST_GATHER_S if unknown else self._gather_s)
        while len(self._waiting) < MAX_COUNT and (left := deadline - loop.time()) > 0:
            self._arrived.clear()
            await wait_event(self._arrived, left)

    def _take(self, n: int) -> list[asyncio.Future[Photo | str]]:
        self._waiting = [w for w in self._waiting if not w.done()]  # gone: a job let go
        batch, self._waiting = self._waiting[:n], self._waiting[n:]
        return batch

    async def _serve(self, batch: list[asyncio.Future[Photo | str]]) -> None:
        try:
            answer = await self._unsplash.random_photos(len(batch), taken=self._quota is not None)
        except Exception as error:  # a defect: the jobs fail saying so, none is stuck
            log.exception("fetching photos failed")
            reason = f"the fetcher failed unexpectedly ({type(error).__name__})"
            _settle(batch, lambda wanted: wanted.set_result(reason))
            return
        finally:
            self._requests.release()
        if isinstance(answer, str):
            _settle(batch, lambda wanted: wanted.set_result(answer))
            return
        photos = list({photo.id: photo for photo in answer}.values())  # one job each
        if self._claims is not None:
            photos = await self._claims.fresh(photos)
        unserved = []
        for wanted in (w for w in batch if not w.done()):
            if photos:
                wanted.set_result(photos.pop(0))
            else:  # fewer photos than jobs: the rest go with the next request
                unserved.append(wanted)
        if unserved:
            if not photos and len(unserved) == len(batch):  # nothing new came: not at once
                await asyncio.sleep(NOTHING_NEW_BACKOFF_S)
            self._waiting[:0] = unserved
            self._arrived.set()
        if photos:
            log.info("photos left unused", extra={"photos": len(photos)})


def _settle(
    batch: list[asyncio.Future[Photo | str]],
    settle: Callable[[asyncio.Future[Photo | str]], None],
) -> None:
    for wanted in batch:
        if not wanted.done():
            settle(wanted)


class PhotoClaims:
    """Each photo for one job only, across requests, fetchers and crashes: a photo's id is
    claimed in the store (insert-if-absent) before a job is given it, and a photo claimed
    before is not given again. (One claimed by a fetcher that then died goes unused.)"""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def fresh(self, photos: list[Photo]) -> list[Photo]:
        """The photos claimed now, the others dropped."""
        if not photos:
            return []
        docs = [{"_id": photo.id, "claimed_at": utc_now()} for photo in photos]
        taken = set(
            await retried(  # the store is away: the jobs wait for it
                lambda: insert_new(self._collection, docs),
                (PyMongoError,),
                log=log,
                message="photo claims unavailable; retrying",
                pause_s=STORE_RETRY_S,
            )
        )
        if taken:
            log.info("photos given before, not again", extra={"photos": len(taken)})
        return [photo for i, photo in enumerate(photos) if i not in taken]
