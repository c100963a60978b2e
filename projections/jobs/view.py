"""The job view and how events change it. Pure.

Each event sets a fixed set of fields whose values come from the event alone, and the view
records the highest per-job version applied. Applying an event whose version is not above the
view's changes nothing, so redeliveries and replays are harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from schema import Event, JobDue, JobFailed, JobRequested, JobResolved, Photo
from schema.codec import photo_from_dict

PENDING, PROCESSING, RESOLVED, FAILED = "pending", "processing", "resolved", "failed"
STATUSES = (PENDING, PROCESSING, RESOLVED, FAILED)

Doc = dict[str, Any]


def changes(event: Event) -> Doc:
    """The fields this event sets in its job's view."""
    at = event.occurred_at
    if isinstance(event, JobRequested):
        return {
            "status": PENDING,
            "created_at": at,
            "due_at": event.due_at,
            "delay_s": event.delay_s,
            "updated_at": at,
        }
    if isinstance(event, JobDue):
        return {"status": PROCESSING, "updated_at": at}
    if isinstance(event, JobResolved):
        return {"status": RESOLVED, "result": asdict(event.photo), "updated_at": at}
    if isinstance(event, JobFailed):
        return {"status": FAILED, "error": event.reason, "updated_at": at}
    raise TypeError(f"no view change for {event.TYPE}")


def evolve(view: Mapping[str, Any] | None, event: Event) -> Doc:
    if view is not None and view["version"] >= event.version:
        return dict(view)
    base = dict(view) if view is not None else {"_id": event.job_id}
    return {**base, **changes(event), "version": event.version}


def plan(events: Iterable[Event]) -> dict[str, tuple[int, Doc]]:
    """One write per job for a batch: the highest version and the merged fields to set.

    Setting the merged fields under the guard `version < highest` gives the same document as
    folding `evolve` over the log, because of how a job's events reach the log: one event
    per version (ids are unique, derived events have fixed ids), first appearing in version
    order (each is emitted only after the previous one was read from the log), and any later
    copy is a redelivery of the same event. So fields the store already has are set again to
    what they are. `tests/unit/test_view.py` checks this property on generated logs.
    """
    merged: dict[str, tuple[int, Doc]] = {}
    for event in events:
        version, fields = merged.get(event.job_id, (0, {}))
        if event.version > version:
            merged[event.job_id] = (event.version, {**fields, **changes(event)})
    return merged


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    status: str
    created_at: datetime | None
    due_at: datetime | None
    updated_at: datetime | None
    version: int
    result: Photo | None = None
    error: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> JobView:
        result = doc.get("result")
        return cls(
            id=doc["_id"],
            status=doc["status"],
            created_at=doc.get("created_at"),
            due_at=doc.get("due_at"),
            updated_at=doc.get("updated_at"),
            version=doc["version"],
            result=photo_from_dict(result) if result is not None else None,
            error=doc.get("error"),
        )
