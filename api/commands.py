"""Deciding the job commands: a new job, a cancel, a retry. Pure: the state acted on, ids,
clock and randomness are passed in; a command the state does not allow raises WrongState.

A command on an existing job emits its next version, from the view it read. Two callers
acting on the same view decide the same version, and the log keeps one per version: the
service stores the first decision under the version and hands it to every such caller."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from api.errors import WrongState
from projections.jobs.view import JobStatus, JobView
from schema import JobCancelled, JobRequested, JobRetried, derived_event_id


def pick_delay(rng: random.Random, min_s: float, max_s: float, step_s: float) -> float:
    """A delay drawn uniformly from min, min+step, ..., up to max."""
    steps = int((max_s - min_s) / step_s + 1e-9)
    return round(min_s + step_s * rng.randint(0, steps), 6)


def request_job(
    *, job_id: str, event_id: str, now: datetime, delay_s: float, idempotency_key: str | None
) -> JobRequested:
    """The job's delay is fixed here, in the event, and never recomputed (replay-safe)."""
    return JobRequested(
        event_id=event_id,
        job_id=job_id,
        occurred_at=now,
        due_at=now + timedelta(seconds=delay_s),
        delay_s=delay_s,
        idempotency_key=idempotency_key,
    )


def cancel_job(view: JobView, now: datetime) -> JobCancelled:
    """Cancel a pending job. Whether it wins is the log's to say: a JobDue for the same
    version appended first makes it stale (view.py)."""
    _expect(view, JobStatus.PENDING, "cancelled")
    version = view.version + 1
    return JobCancelled(
        event_id=derived_event_id(view.id, f"cancel@{version}"),
        job_id=view.id,
        version=version,
        occurred_at=now,
    )


def retry_job(view: JobView, now: datetime, delay_s: float) -> JobRetried:
    """Try a failed job again: a new attempt after a new wait of `delay_s`."""
    _expect(view, JobStatus.FAILED, "retried")
    version = view.version + 1
    return JobRetried(
        event_id=derived_event_id(view.id, f"retry@{version}"),
        job_id=view.id,
        version=version,
        occurred_at=now,
        due_at=now + timedelta(seconds=delay_s),
        delay_s=delay_s,
    )


def _expect(view: JobView, status: JobStatus, done: str) -> None:
    if view.status is not status:
        raise WrongState(
            f"job {view.id!r} is {view.status}: only a {status} job can be {done}", view.status
        )
