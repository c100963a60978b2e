"""What the delay processor decides. Pure: the clock is passed in."""

from __future__ import annotations

from datetime import datetime

from schema import JobDue, Scheduling, attempt_event_id

#: A job's first JobDue follows its JobRequested (version 1).
FIRST_DUE_VERSION = 2


def is_due(wait: Scheduling, now: datetime) -> bool:
    return now >= wait.due_at


def seconds_until_due(wait: Scheduling, now: datetime) -> float:
    return max(0.0, (wait.due_at - now).total_seconds())


def job_due(wait: Scheduling, now: datetime) -> JobDue:
    """The JobDue for a wait (a JobRequested, or a retry's JobRetried) whose time has come:
    the job's next version. Its id is derived from the job and that version, so a JobDue
    emitted again after a crash is recognisably the same event."""
    if not is_due(wait, now):
        raise ValueError(f"job {wait.job_id} is not due before {wait.due_at}")
    version = wait.version + 1
    return JobDue(
        event_id=attempt_event_id(wait.job_id, "due", version, FIRST_DUE_VERSION),
        job_id=wait.job_id,
        version=version,
        occurred_at=now,
        due_at=wait.due_at,
    )
