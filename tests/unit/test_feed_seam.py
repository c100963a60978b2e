"""The seam of a resumed subscription (api/feed.py `Updates`): the history's changes, then the
live ones it had not given, each once, whatever the positions look like. The store's change
streams are stood in for by lists: the logic under test is which changes pass."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from api.feed import Change, SubscriberTooSlow, Subscription, Updates
from projections.jobs.store import to_document
from projections.jobs.view import JobStatus, JobView

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _view(job_id: str, version: int) -> JobView:
    status = (JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.RESOLVED)[min(version, 3) - 1]
    return JobView(
        id=job_id, status=status, created_at=NOW, due_at=NOW, updated_at=NOW, version=version
    )


class History:
    """A change stream's `try_next` over given events, then None (caught up)."""

    def __init__(self, changes: list[Change]) -> None:
        self._events: list[dict[str, Any]] = [
            {
                "_id": {"_data": c.position},
                "operationType": "update",
                "fullDocument": to_document(c.view),
            }
            for c in changes
        ]
        self.closed = False

    async def try_next(self) -> dict[str, Any] | None:
        return self._events.pop(0) if self._events else None

    async def close(self) -> None:
        self.closed = True


async def _take(updates: Updates, n: int) -> list[Change]:
    """The first n changes (a change missing shows as a timeout, not a hang)."""
    got: list[Change] = []
    async with asyncio.timeout(5):
        async for change in updates:
            got.append(change)
            if len(got) == n:
                break
    return got


async def test_live_changes_the_history_gave_are_not_given_twice() -> None:
    # Positions that do not sort as strings (the embedded store's: little-endian counters).
    older = [Change("fc01", _view("a", 1)), Change("fd01", _view("b", 1))]
    overlap = [Change("fe01", _view("a", 2)), Change("ff01", _view("c", 1))]
    newer = [Change("0002", _view("a", 3)), Change("0102", _view("b", 2))]
    subscription = Subscription(None, 16)
    for change in [*overlap, *newer]:  # registered before the history opened
        assert subscription.offer(change)
    history = History([*older, *overlap])
    # Where the live changes begin is not known here (start None): the history is read to
    # its end, and the live changes it gave are told by their positions.
    updates = Updates(subscription, history, "fb01", None)  # type: ignore[arg-type]

    got = await _take(updates, len(older) + len(overlap) + len(newer))
    assert [c.position for c in got] == ["fc01", "fd01", "fe01", "ff01", "0002", "0102"]
    assert history.closed
    assert subscription.unread == 0


async def test_a_job_shown_at_a_later_version_is_not_shown_older_again() -> None:
    # The history looks a document up when it reads the change: it may show version 3 for
    # a change whose live copy (read earlier) showed version 2.
    subscription = Subscription(None, 16)
    assert subscription.offer(Change("0a", _view("a", 2)))
    assert subscription.offer(Change("0c", _view("b", 1)))
    history = History([Change("0b", _view("a", 3))])
    updates = Updates(subscription, history, "09", None)  # type: ignore[arg-type]
    got = await _take(updates, 2)
    assert [(c.view.id, c.view.version) for c in got] == [("a", 3), ("b", 1)]


async def test_the_history_is_read_up_to_where_the_live_changes_begin() -> None:
    older = [Change("fc01", _view("a", 1)), Change("fd01", _view("b", 1))]
    live = [Change("fe01", _view("a", 2)), Change("ff01", _view("c", 1))]
    subscription = Subscription(None, 16)
    for change in live:
        assert subscription.offer(change)
    history = History([*older, *live])  # (its end: what the live changes also bring)
    updates = Updates(subscription, history, "fb01", "fd01")  # type: ignore[arg-type]
    got = await _take(updates, 4)
    assert [c.position for c in got] == ["fc01", "fd01", "fe01", "ff01"]
    assert history.closed
    assert len(history._events) == 2  # not read: the live changes came from the feed

    caught_up = History([Change("fe01", _view("a", 2))])
    subscription = Subscription(None, 16)
    assert subscription.offer(Change("fe01", _view("a", 2)))
    updates = Updates(subscription, caught_up, "fd01", "fd01")  # type: ignore[arg-type]
    assert [c.position for c in await _take(updates, 1)] == ["fe01"]
    assert len(caught_up._events) == 1  # nothing to read before the live changes


async def test_a_subscriber_that_falls_behind_is_told_once_it_reads() -> None:
    subscription = Subscription(None, size=2)
    view = _view("j", 1)
    assert subscription.offer(Change("01", view))
    assert subscription.offer(Change("02", view))
    assert not subscription.offer(Change("03", view))  # a third unread: too slow
    assert subscription.unread == 0  # what it had not read is let go
    with pytest.raises(SubscriberTooSlow):
        async for _ in subscription:
            pass


async def test_an_idle_subscription_says_so_between_changes() -> None:
    """With `idle_s` (SSE's keep-alive), None after each `idle_s` without a change; the
    changes as they come; none of that without it."""
    subscription = Subscription(None, 16, idle_s=0.05)
    changes = aiter(subscription)
    assert await anext(changes) is None
    assert await anext(changes) is None  # and again
    subscription.offer(Change("01", _view("j", 1)))
    first = await anext(changes)
    assert first is not None
    assert first.position == "01"
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, subscription.offer, Change("02", _view("j", 2)))
    second = await anext(changes)  # before the idle time: the change, not None
    assert second is not None
    assert second.position == "02"
    await changes.aclose()

    quiet = aiter(Subscription(None, 16))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await anext(quiet)
    await quiet.aclose()
