"""Hypothesis strategies for events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from schema import (
    Event,
    JobCancelled,
    JobDue,
    JobFailed,
    JobRequested,
    JobResolved,
    JobRetried,
    Photo,
    PhotoLinks,
    PhotoUrls,
    PhotoUser,
    UserLinks,
)

texts = st.text(min_size=1, max_size=30)
opt_texts = st.none() | st.text(max_size=30)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
urls = st.builds(PhotoUrls, raw=texts, full=texts, regular=texts, small=texts, thumb=texts)
photos = st.builds(
    Photo,
    id=texts,
    urls=urls,
    alt_description=opt_texts,
    width=st.integers(0, 10_000),
    height=st.integers(0, 10_000),
    color=opt_texts,
    blur_hash=opt_texts,
    links=st.builds(PhotoLinks, html=texts, download_location=opt_texts),
    user=st.builds(PhotoUser, name=texts, username=texts, links=st.builds(UserLinks, html=texts)),
)
job_ids = st.sampled_from(["a", "b", "c"])


def _requested(job_id: str, at: datetime, delay: float, key: str | None, seq: int | None) -> Event:
    return JobRequested(
        event_id=f"r-{job_id}",
        job_id=job_id,
        occurred_at=at,
        due_at=at + timedelta(seconds=delay),
        delay_s=delay,
        idempotency_key=key,
        seq=seq,
    )


requested = st.builds(
    _requested,
    job_ids,
    moments,
    st.floats(0, 300, allow_nan=False),
    st.none() | texts,
    st.none() | st.integers(1, 2**53),
)
due = st.builds(
    lambda j, at: JobDue(event_id=f"d-{j}", job_id=j, version=2, occurred_at=at, due_at=at),
    job_ids,
    moments,
)
resolved = st.builds(
    lambda j, at, p: JobResolved(event_id=f"o-{j}", job_id=j, version=3, occurred_at=at, photo=p),
    job_ids,
    moments,
    photos,
)
failed = st.builds(
    lambda j, at, r: JobFailed(event_id=f"o-{j}", job_id=j, version=3, occurred_at=at, reason=r),
    job_ids,
    moments,
    texts,
)
cancelled = st.builds(
    lambda j, at: JobCancelled(event_id=f"c-{j}", job_id=j, version=2, occurred_at=at),
    job_ids,
    moments,
)
retried = st.builds(
    lambda j, at, delay: JobRetried(
        event_id=f"t-{j}",
        job_id=j,
        version=4,
        occurred_at=at,
        due_at=at + timedelta(seconds=delay),
        delay_s=delay,
    ),
    job_ids,
    moments,
    st.floats(0, 300, allow_nan=False),
)
events = st.one_of(requested, due, resolved, failed, cancelled, retried)


def _later(event: Event, versions: int) -> Event:
    """The same kind of event for the attempt after a retry (`versions` on)."""
    return replace(event, version=event.version + versions, event_id=f"{event.event_id}+")  # type: ignore[type-var]


@st.composite
def life(draw: st.DrawFn, job: str) -> list[Event]:
    """One job's events in the order they reach the log: a plain life, a cancel racing its
    JobDue (the first on the log wins; an outcome follows a JobDue only when the fetcher saw
    the JobDue first), or a failure retried, whose new attempt may race a cancel too."""
    req, d, c, f, r = (
        _with_job(draw(e), job) for e in (requested, due, cancelled, failed, retried)
    )
    outcome = _with_job(draw(st.one_of(resolved, failed)), job)
    again = _with_job(draw(st.one_of(resolved, failed)), job)
    d2, c2, again = _later(d, 3), _later(c, 3), _later(again, 3)
    kind = draw(
        st.sampled_from(
            [
                "plain",
                "cancelled",
                "cancel first",
                "due first",
                "retried",
                "retry cancel first",
                "retry due first",
            ]
        )
    )
    return {
        "plain": [req, d, outcome],
        "cancelled": [req, c],
        "cancel first": [req, c, d],
        "due first": [req, d, c, outcome],
        "retried": [req, d, f, r, d2, again],
        "retry cancel first": [req, d, f, r, c2, d2],
        "retry due first": [req, d, f, r, d2, c2, again],
    }[kind]


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Logs as consumers read them. Causality orders a job's events where they first appear:
    the API writes JobRequested, the delay processor writes JobDue only after reading it, the
    fetcher writes the outcome only after reading JobDue. Any event may then appear again
    later, and jobs interleave freely: a redelivery repeats it as it was, a re-emission after
    a crash (a JobDue fired again by a restarted delay processor) carries the same id but the
    time of its own emission."""
    jobs = sorted(draw(st.sets(job_ids, min_size=1)))
    lives = {job: draw(life(job)) for job in jobs}
    emitted = dict.fromkeys(jobs, 0)
    history: list[Event] = []
    for job, again in draw(st.lists(st.tuples(st.sampled_from(jobs), st.booleans()), max_size=15)):
        seen = emitted[job]
        if again and seen:
            copy = lives[job][draw(st.integers(0, seen - 1))]
            if draw(st.booleans()):
                copy = replace(copy, occurred_at=draw(moments))  # type: ignore[type-var]
            history.append(copy)
        elif seen < len(lives[job]):
            history.append(lives[job][seen])
            emitted[job] += 1
    return history


def _with_job(event: Event, job_id: str) -> Event:
    return replace(event, job_id=job_id)  # type: ignore[type-var]
