"""The newest jobs and the counts, held in the API's memory and kept current by the change
stream, so the board's reads (first pages, pages a few hundred deep, status-filtered pages, a
recent job by id, the counts) cost no store round trip however busy the store is.

The board holds every job whose `seq` is at least its `bottom`: loaded from the store when
the change stream opens (the stream is opened first, so nothing written meanwhile is
missed), then changed by every change the stream delivers and by every job this API creates
(read-your-writes). A change never takes a job back to an older version. Beyond `size` jobs
the oldest are dropped and `bottom` rises. What lies below `bottom`, or anything asked while
the stream is down or loading, is read from the store: the board is a cache of the read
model, never a second source of truth.

Per status a sorted index of (seq, id) serves a filtered page in O(log n + page).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from typing import Any

from projections.jobs.store import COUNT_SHARDS, sum_counts
from projections.jobs.view import STATUSES, JobView

Position = tuple[int, str]  # (seq, id): the board's order, newest last
BOARD_JOBS = 20_000
SLACK = 0.1  # drop the oldest in chunks of this fraction of `size`


class Board:
    def __init__(self, size: int = BOARD_JOBS) -> None:
        if size < 1:
            raise ValueError("a board holds at least one job")
        self.size = size
        self.live = False
        self._views: dict[str, JobView] = {}
        self._order: list[Position] = []
        self._by_status: dict[str, list[Position]] = {s: [] for s in STATUSES}
        self._shards: dict[str, Mapping[str, Any]] = {}
        self.bottom: int | None = None  # None: every job is here

    # -- kept current ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything and serve nothing until loaded again (the stream is down)."""
        self.live = False
        self._views.clear()
        self._order.clear()
        for positions in self._by_status.values():
            positions.clear()
        self._shards.clear()
        self.bottom = None

    def load(self, views: Iterable[JobView], complete: bool, shards: Iterable[Any]) -> None:
        """The newest jobs as the store has them (all of them if `complete`) and the count
        documents; the board then serves reads."""
        self.reset()
        loaded = [v for v in views if v.seq is not None]
        for view in loaded:
            self._put(view)
        if not complete and loaded:
            self.bottom = min(v.seq for v in loaded if v.seq is not None)
        for doc in shards:
            self._shards[doc["_id"]] = doc
        self.live = True

    def counted(self, shard: Mapping[str, Any], inserted: bool) -> None:
        """A count document as the change stream delivers it: as inserted (maybe older
        than the one loaded), or as it is now."""
        if not (inserted and shard["_id"] in self._shards):
            self._shards[shard["_id"]] = shard

    def add(self, view: JobView) -> None:
        """A job's view, unless the board has a newer one or the job lies below it."""
        if view.seq is None or (self.bottom is not None and view.seq < self.bottom):
            return
        held = self._views.get(view.id)
        if held is not None:
            if held.version >= view.version:
                return
            if held.status != view.status:
                _remove(self._by_status[held.status], (view.seq, view.id))
            else:
                self._views[view.id] = view
                return
        self._put(view)
        if len(self._order) > self.size * (1 + SLACK):
            self._drop_oldest(len(self._order) - self.size)

    def _put(self, view: JobView) -> None:
        assert view.seq is not None
        position = (view.seq, view.id)
        if view.id not in self._views:
            _insert(self._order, position)
        self._views[view.id] = view
        _insert(self._by_status[view.status], position)

    def _drop_oldest(self, count: int) -> None:
        dropped, self._order[:count] = self._order[:count], []
        for _, job_id in dropped:
            del self._views[job_id]
        self.bottom = self._order[0][0]
        floor = (self.bottom, "")
        for positions in self._by_status.values():
            del positions[: bisect_left(positions, floor)]

    # -- reads ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobView | None:
        """The job, if the board holds it (a miss says nothing: ask the store)."""
        return self._views.get(job_id) if self.live else None

    def counts(self) -> dict[str, int] | None:
        if not self.live:
            return None
        return sum_counts(self._shards[s] for s in COUNT_SHARDS if s in self._shards)

    def scan(self, want: int, after: Position | None, status: str | None) -> Scan | None:
        """Up to `want` jobs, newest first, below `after`; None when the board cannot tell
        (not live, or `after` lies below it)."""
        if not self.live:
            return None
        if after is not None and self.bottom is not None and after[0] < self.bottom:
            return None
        positions = self._order if status is None else self._by_status[status]
        end = len(positions) if after is None else bisect_left(positions, after)
        start = max(0, end - want)
        views = [self._views[job_id] for _, job_id in reversed(positions[start:end])]
        below = None if start > 0 or self.bottom is None else (self.bottom, "")
        return Scan(views, below)

    def __len__(self) -> int:
        return len(self._order)


class Scan:
    """What the board found, and `below`: where the store must go on from when the board
    ran out before finding as many as wanted (None: the board holds all there is)."""

    def __init__(self, views: list[JobView], below: Position | None) -> None:
        self.views = views
        self.below = below


def _insert(positions: list[Position], position: Position) -> None:
    if not positions or positions[-1] < position:
        positions.append(position)  # the usual case: a new job is the newest
    else:
        insort(positions, position)


def _remove(positions: list[Position], position: Position) -> None:
    index = bisect_left(positions, position)
    if index < len(positions) and positions[index] == position:
        del positions[index]
