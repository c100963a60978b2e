"""Deciding a new job. Pure: ids, clock and randomness are passed in."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from schema import JobRequested


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
