"""Event builders for tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from schema import (
    Event,
    JobDue,
    JobFailed,
    JobRequested,
    JobResolved,
    Photo,
    PhotoLinks,
    PhotoUrls,
    PhotoUser,
    UserLinks,
    derived_event_id,
)


def photo(photo_id: str = "p1", name: str = "Ada Baker") -> Photo:
    base = f"https://images.example/{photo_id}"
    return Photo(
        id=photo_id,
        urls=PhotoUrls(raw=base, full=base, regular=base, small=base, thumb=base),
        alt_description="a bowl of ramen",
        width=4000,
        height=3000,
        color="#d9a673",
        blur_hash="LKO2?V%2Tw=w]~RBVZRi};RPxuwH",
        links=PhotoLinks(html=f"https://unsplash.example/photos/{photo_id}"),
        user=PhotoUser(name=name, username="ada", links=UserLinks(html="https://u.example/@ada")),
    )


def job_life(
    job_id: str,
    at: datetime,
    resolved: bool = True,
    photo_id: str | None = None,
    seq: int | None = None,
) -> list[Event]:
    """A whole job: requested, due 5 s later, then resolved or failed."""
    due_at = at + timedelta(seconds=5)
    outcome: Event = (
        JobResolved(
            event_id=derived_event_id(job_id, "outcome"),
            job_id=job_id,
            version=3,
            occurred_at=due_at + timedelta(seconds=1),
            photo=photo(photo_id or f"photo-{job_id}"),
        )
        if resolved
        else JobFailed(
            event_id=derived_event_id(job_id, "outcome"),
            job_id=job_id,
            version=3,
            occurred_at=due_at + timedelta(seconds=1),
            reason="Unsplash answered 503",
        )
    )
    return [
        JobRequested(
            event_id=f"req-{job_id}",
            job_id=job_id,
            occurred_at=at,
            due_at=due_at,
            delay_s=5.0,
            seq=seq,
        ),
        JobDue(
            event_id=derived_event_id(job_id, "due"),
            job_id=job_id,
            version=2,
            occurred_at=due_at,
            due_at=due_at,
        ),
        outcome,
    ]


#: A job's history, by event type, once it failed, was retried and then resolved.
RETRIED_AND_RESOLVED = [
    "JobRequested",
    "JobDue",
    "JobFailed",
    "JobRetried",
    "JobDue",
    "JobResolved",
]
