"""What the delay processor decides. Pure: the clock is passed in."""

from __future__ import annotations

from datetime import datetime

from schema import JobDue, JobRequested, derived_event_id


def is_due(requested: JobRequested, now: datetime) -> bool:
    return now >= requested.due_at


def seconds_until_due(requested: JobRequested, now: datetime) -> float:
    return max(0.0, (requested.due_at - now).total_seconds())


def job_due(requested: JobRequested, now: datetime) -> JobDue:
    """The JobDue for a request whose time has come: the job's next version. Its id is derived
    from the job, so a JobDue emitted again after a crash is recognisably the same event."""
    if not is_due(requested, now):
        raise ValueError(f"job {requested.job_id} is not due before {requested.due_at}")
    return JobDue(
        event_id=derived_event_id(requested.job_id, "due"),
        job_id=requested.job_id,
        version=requested.version + 1,
        occurred_at=now,
        due_at=requested.due_at,
    )
