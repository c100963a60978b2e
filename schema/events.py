"""Job events: frozen, typed, never edited once released (add an upcaster instead).

A job's life is a fixed sequence, so its per-job `version` is fixed by the event type:
JobRequested is 1, JobDue is 2, and the terminal JobResolved or JobFailed is 3. Consumers guard
on it: an event whose version is not above what they already applied is a redelivery.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

#: Events that a processor derives from another (JobDue from JobRequested, the outcome from
#: JobDue) get ids derived from the job id, so a redelivered decision carries the same id.
DERIVED_EVENT_NAMESPACE = uuid.UUID("6f1d3c0e-58a4-4b8e-9d53-0b7c2f4e9a11")


def derived_event_id(job_id: str, kind: str) -> str:
    return str(uuid.uuid5(DERIVED_EVENT_NAMESPACE, f"{job_id}/{kind}"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """The envelope every event carries."""

    TYPE: ClassVar[str] = "Event"
    VERSION: ClassVar[int] = 0

    event_id: str
    job_id: str
    occurred_at: datetime

    @property
    def version(self) -> int:
        """The per-job version: this event's place in the job's life."""
        return self.VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRequested(Event):
    """A user asked for a job. The delay is decided here, once, and never recomputed."""

    TYPE: ClassVar[str] = "JobRequested"
    VERSION: ClassVar[int] = 1

    due_at: datetime
    delay_s: float
    idempotency_key: str | None = None
    #: The job's place in creation order: dense from 1, allocated by the API as it commits
    #: creations (schema v2). The board lists jobs by it. None in v1 events.
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDue(Event):
    """The job's time has come: fetch its photo now."""

    TYPE: ClassVar[str] = "JobDue"
    VERSION: ClassVar[int] = 2

    due_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PhotoUrls:
    raw: str
    full: str
    regular: str
    small: str
    thumb: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PhotoLinks:
    html: str
    download_location: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserLinks:
    html: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PhotoUser:
    name: str
    username: str
    links: UserLinks


@dataclass(frozen=True, slots=True, kw_only=True)
class Photo:
    """The part of an Unsplash photo object that jobline keeps (field names as Unsplash's)."""

    id: str
    urls: PhotoUrls
    alt_description: str | None
    width: int
    height: int
    color: str | None
    blur_hash: str | None
    links: PhotoLinks
    user: PhotoUser


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResolved(Event):
    TYPE: ClassVar[str] = "JobResolved"
    VERSION: ClassVar[int] = 3

    photo: Photo


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFailed(Event):
    TYPE: ClassVar[str] = "JobFailed"
    VERSION: ClassVar[int] = 3

    reason: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (JobRequested, JobDue, JobResolved, JobFailed)
}
