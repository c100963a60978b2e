"""The event contract of jobline: event types, envelope, codec, upcasters and topic names.

This package is the bottom of the house: it imports nothing from the rest of the project.
"""

from schema.codec import (
    NewerSchemaVersion,
    PoisonRecord,
    UndecodableRecord,
    UnknownEventType,
    decode,
    encode,
    headers_for,
    json_schema,
    photo_from_dict,
)
from schema.events import (
    DERIVED_EVENT_NAMESPACE,
    EVENT_TYPES,
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
    Scheduling,
    Upcaster,
    UserLinks,
    attempt_event_id,
    derived_event_id,
)
from schema.topics import Topics

__all__ = [
    "DERIVED_EVENT_NAMESPACE",
    "EVENT_TYPES",
    "Event",
    "JobCancelled",
    "JobDue",
    "JobFailed",
    "JobRequested",
    "JobResolved",
    "JobRetried",
    "NewerSchemaVersion",
    "Photo",
    "PhotoLinks",
    "PhotoUrls",
    "PhotoUser",
    "PoisonRecord",
    "Scheduling",
    "Topics",
    "UndecodableRecord",
    "UnknownEventType",
    "Upcaster",
    "UserLinks",
    "attempt_event_id",
    "decode",
    "derived_event_id",
    "encode",
    "headers_for",
    "json_schema",
    "photo_from_dict",
]
