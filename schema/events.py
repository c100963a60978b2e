"""Job events: frozen, typed, never edited once released (raise `SCHEMA_VERSION` and add an
upcaster instead).

Each class is the whole contract of its event type, in one place: its fields (the record's
`data`, beside the envelope every event carries), the schema version it is written with, and
the upcasters that bring records of older schema versions up to that one. The codec and the
published JSON Schema are derived from these classes (`schema/codec.py`); a test fails when
the committed `json/event.schema.json` differs from the derived one.

`version` is the job's version once the event applies: whoever emits an event decides it from
the state it acted on, as that state's version plus one (a JobRequested starts a job at 1).
Consumers guard on it: an event whose version is not above what they have applied is a
redelivery, or lost a race to another event of that version appended before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import ConfigDict

#: Events that a processor derives from another (JobDue from JobRequested, the outcome from
#: JobDue) get ids derived from the job id, so a redelivered decision carries the same id.
DERIVED_EVENT_NAMESPACE = uuid.UUID("6f1d3c0e-58a4-4b8e-9d53-0b7c2f4e9a11")

#: Turns a record envelope of one schema version into the next version's.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def derived_event_id(job_id: str, kind: str) -> str:
    return str(uuid.uuid5(DERIVED_EVENT_NAMESPACE, f"{job_id}/{kind}"))


def attempt_event_id(job_id: str, kind: str, version: int, first_version: int) -> str:
    """The derived id of an event a job has once per attempt (its JobDue, its outcome): one
    per version. A first attempt's keeps the id it had before jobs could be retried (kind
    alone), so records already on a log are still recognised when emitted again."""
    return derived_event_id(job_id, kind if version == first_version else f"{kind}@{version}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """The envelope every event carries."""

    #: The record's `type`: never changes once released, whatever the class is called.
    TYPE: ClassVar[str] = "Event"
    #: The schema version records of this type are written with today.
    SCHEMA_VERSION: ClassVar[int] = 1
    #: Schema version -> the upcaster from that version to the next. Raise SCHEMA_VERSION only
    #: together with an upcaster from the version before.
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {}

    event_id: str
    job_id: str
    #: The job's version once this event applies: the emitter's state's version plus one.
    version: int
    occurred_at: datetime


def _seq_none(envelope: dict[str, Any]) -> dict[str, Any]:
    """JobRequested v1 -> v2: v2 adds `seq`; a v1 job has none."""
    return {**envelope, "data": {**envelope["data"], "seq": None}}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRequested(Event):
    """A user asked for a job. The delay is decided here, once, and never recomputed."""

    TYPE: ClassVar[str] = "JobRequested"
    SCHEMA_VERSION: ClassVar[int] = 2
    UPCASTERS: ClassVar[Mapping[int, Upcaster]] = {1: _seq_none}

    version: int = 1
    due_at: datetime
    delay_s: float
    idempotency_key: str | None = None
    #: The job's place in creation order: dense from 1, allocated by the API as it commits
    #: creations (schema v2). The board lists jobs by it. None in v1 events.
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRetried(Event):
    """A user asked for a failed job to be tried again: a new attempt, with a wait of its own
    (decided here, once, as a JobRequested's), then a new JobDue and outcome."""

    TYPE: ClassVar[str] = "JobRetried"

    due_at: datetime
    delay_s: float


#: The events that start a wait: the delay processor arms a timer for each.
Scheduling = JobRequested | JobRetried


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDue(Event):
    """The job's time has come: fetch its photo now."""

    TYPE: ClassVar[str] = "JobDue"

    due_at: datetime


#: The photo classes take Unsplash's photo objects as they come: what jobline does not keep
#: is ignored, what it keeps must have its type (no "12" for a width).
PHOTO_FIELDS = ConfigDict(strict=True, extra="ignore")


@dataclass(frozen=True, slots=True, kw_only=True)
class PhotoUrls:
    """The photo at several sizes (`raw` takes imgix parameters)."""

    __pydantic_config__ = PHOTO_FIELDS

    raw: str
    full: str
    regular: str
    small: str
    thumb: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PhotoLinks:
    """The photo's page on Unsplash, and the address to report a download to."""

    __pydantic_config__ = PHOTO_FIELDS

    html: str
    download_location: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserLinks:
    """The photographer's page on Unsplash."""

    __pydantic_config__ = PHOTO_FIELDS

    html: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PhotoUser:
    """Who took the photo: credit them, linking to their page."""

    __pydantic_config__ = PHOTO_FIELDS

    name: str
    username: str
    links: UserLinks


@dataclass(frozen=True, slots=True, kw_only=True)
class Photo:
    """The part of an Unsplash photo object that jobline keeps (field names as Unsplash's)."""

    __pydantic_config__ = PHOTO_FIELDS

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
    """The job's photo, fetched: a terminal state."""

    TYPE: ClassVar[str] = "JobResolved"

    photo: Photo


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFailed(Event):
    """No photo could be had for the job: a terminal state, unless a user retries it."""

    TYPE: ClassVar[str] = "JobFailed"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelled(Event):
    """A user cancelled the pending job: a terminal state. Emitted for the version after the
    pending state it saw; if a JobDue took that version first on the log, the cancel lost."""

    TYPE: ClassVar[str] = "JobCancelled"


#: Every event type, by its record `type`.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (JobRequested, JobDue, JobResolved, JobFailed, JobCancelled, JobRetried)
}
