"""The event contract of jobline: event types, envelope, codec, upcasters and topic names.

This package is the bottom of the house: it imports nothing from the rest of the project.
"""

from schema.codec import (
    CURRENT_SCHEMA_VERSIONS,
    NewerSchemaVersion,
    PoisonRecord,
    UndecodableRecord,
    UnknownEventType,
    decode,
    encode,
    headers_for,
)
from schema.events import (
    DERIVED_EVENT_NAMESPACE,
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
from schema.topics import Topics

__all__ = [
    "CURRENT_SCHEMA_VERSIONS",
    "DERIVED_EVENT_NAMESPACE",
    "Event",
    "JobDue",
    "JobFailed",
    "JobRequested",
    "JobResolved",
    "NewerSchemaVersion",
    "Photo",
    "PhotoLinks",
    "PhotoUrls",
    "PhotoUser",
    "PoisonRecord",
    "Topics",
    "UndecodableRecord",
    "UnknownEventType",
    "UserLinks",
    "decode",
    "derived_event_id",
    "encode",
    "headers_for",
]
