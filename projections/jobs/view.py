"""The job view and how events change it: one typed fold. Pure.

`evolve(view, event)` is the whole of a job's read model. The projection, read-your-writes
and replay all fold a job's events with it, in log order; how a view is kept in a store (and
how a change of it becomes a store write) is the store adapter's business alone
(`projections/jobs/store.py`).

Each event carries the job's version once it applies. An event whose version is not above
the view's changes nothing, so redeliveries, replays and copies of an event are harmless,
and of two events emitted for the same version, the one appended first wins. An event also
applies only in the states it moves a job on from (`MOVES_FROM`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from schema import (
    Event,
    JobCancelled,
    JobDue,
    JobFailed,
    JobRequested,
    JobResolved,
    JobRetried,
    Photo,
)


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    RESOLVED = "resolved"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUSES = tuple(JobStatus)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event of a job's life, as the read model keeps it."""

    type: str
    event_id: str
    occurred_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as readers see it.

    A field no event has set yet is empty: a view first folded from a JobDue, say, has no
    creation time until its JobRequested is seen."""

    id: str
    status: JobStatus
    version: int
    created_at: datetime | None = None
    due_at: datetime | None = None
    updated_at: datetime | None = None
    delay_s: float | None = None
    seq: int | None = None
    result: Photo | None = None
    error: str | None = None
    #: The job's events, oldest first, one per version: every attempt of a retried job.
    history: tuple[HistoryEntry, ...] = ()

    @property
    def public_seq(self) -> int | None:
        """The job's place in creation order as the API shows it (None for a v1 job)."""
        return self.seq if self.seq is not None and self.seq >= 1 else None


#: The states each event moves a job on from; in any other it changes nothing. An event
#: derived from one that lost a race (the outcome of a JobDue whose version a cancel took
#: first) therefore never applies, whoever appended it.
MOVES_FROM: dict[type[Event], frozenset[JobStatus]] = {
    JobDue: frozenset({JobStatus.PENDING}),
    JobResolved: frozenset({JobStatus.PROCESSING}),
    JobFailed: frozenset({JobStatus.PROCESSING}),
    JobCancelled: frozenset({JobStatus.PENDING}),
    JobRetried: frozenset({JobStatus.FAILED}),
}


def evolve(view: JobView | None, event: Event) -> JobView:
    """The view once `event` applies (the same view when the event is stale, or does not
    move the job on from its state)."""
    if view is not None and event.version <= view.version:
        return view
    job = view if view is not None else JobView(event.job_id, JobStatus.PENDING, 0)
    allowed = MOVES_FROM.get(type(event))
    if allowed is not None and job.status not in allowed:
        return job if view is None else view
    moved: dict[str, Any]
    if isinstance(event, JobRequested):
        moved = {
            "status": JobStatus.PENDING,
            "seq": order_key(event),
            "created_at": event.occurred_at,
            "due_at": event.due_at,
            "delay_s": event.delay_s,
        }
    elif isinstance(event, JobDue):
        moved = {"status": JobStatus.PROCESSING}
    elif isinstance(event, JobResolved):
        moved = {"status": JobStatus.RESOLVED, "result": event.photo}
    elif isinstance(event, JobFailed):
        moved = {"status": JobStatus.FAILED, "error": event.reason}
    elif isinstance(event, JobCancelled):
        moved = {"status": JobStatus.CANCELLED}
    elif isinstance(event, JobRetried):  # a new wait; the failed attempt stays in the history
        moved = {
            "status": JobStatus.PENDING,
            "due_at": event.due_at,
            "delay_s": event.delay_s,
            "error": None,
        }
    else:
        raise TypeError(f"no view change for {event.TYPE}")
    return replace(  # one copy (each `replace` was a tenth of a replay's CPU)
        job,
        version=event.version,
        updated_at=event.occurred_at,
        history=(*job.history, history_entry(event)),
        **moved,
    )


def history_entry(event: Event) -> HistoryEntry:
    return HistoryEntry(event.TYPE, event.event_id, event.occurred_at, event.version)


#: Jobs requested before events carried `seq` (JobRequested schema v1) are ordered after
#: every sequenced job, among themselves by creation time (microseconds), above this base
#: (which keeps every key a number JavaScript holds exactly).
LEGACY_SEQ_BASE = -(2**53)


def order_key(event: JobRequested) -> int:
    """The job's place on the board (`seq`, newest first): the sequence number the API gave
    it, or, for a v1 event, a negative key that keeps such jobs in creation order."""
    if event.seq is not None:
        return event.seq
    return LEGACY_SEQ_BASE + round(event.occurred_at.timestamp() * 1_000_000)
