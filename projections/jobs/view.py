"""The job view and how events change it. Pure.

Each event sets a fixed set of fields whose values come from the event alone, and the view
records the highest per-job version applied. Applying an event whose version is not above the
view's changes nothing, so redeliveries and replays are harmless. The job's event history is
one of those fields: each event sets `history.<its version>`, so it too is set once, whatever
the redeliveries.

Field names are MongoDB `$set` paths (`history.1` sets key "1" of the `history` document);
`set_fields` does the same to a plain dict, so the pure fold and the store agree.
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
HISTORY = "history"

Doc = dict[str, Any]


def changes(event: Event) -> Doc:
    """The fields this event sets in its job's view, as `$set` paths."""
    return {**_state_changes(event), f"{HISTORY}.{event.version}": history_entry(event)}


def history_entry(event: Event) -> Doc:
    return {
        "type": event.TYPE,
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "version": event.version,
    }


def _state_changes(event: Event) -> Doc:
    at = event.occurred_at
    if isinstance(event, JobRequested):
        return {
            "status": PENDING,
            "seq": order_key(event),
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


#: Jobs requested before events carried `seq` (JobRequested schema v1) are ordered after
#: every sequenced job, among themselves by creation time (microseconds), above this base
#: (which keeps every key a number JavaScript holds exactly).
LEGACY_SEQ_BASE = -(2**53)


def order_key(event: JobRequested) -> int:
    """The job's place on the board (`seq`, newest first): the sequence number the API gave
    it, or, for a v1 event, a negative key that keeps such jobs in creation order."""
    if event.seq is not None:
        return event.seq
    return LEGACY_SEQ_BASE + round(event.occurred_at.timestamp() * 1_000_000)


def set_fields(doc: Mapping[str, Any], fields: Mapping[str, Any]) -> Doc:
    """`doc` with `fields` set as MongoDB's `$set` sets them (a dotted name is a path)."""
    result = dict(doc)
    for name, value in fields.items():
        head, dot, rest = name.partition(".")
        result[head] = set_fields(result.get(head) or {}, {rest: value}) if dot else value
    return result


def evolve(view: Mapping[str, Any] | None, event: Event) -> Doc:
    if view is not None and view["version"] >= event.version:
        return dict(view)
    base = dict(view) if view is not None else {"_id": event.job_id}
    return set_fields(base, {**changes(event), "version": event.version})


@dataclass(frozen=True, slots=True)
class Chain:
    """One job's events of a batch that a fold could apply, in strictly rising version order.

    The store applies only the events above the version it holds (`above`), so a fold
    applies exactly those events, whatever copies the log holds and wherever a batch starts.
    Merging blindly under the highest version instead would let a later copy of an event the
    view already has (a JobDue re-emitted after a crash, with its own `occurred_at`)
    overwrite the first copy's history entry: the live view would then differ from a replay
    that never cut the log at that point.
    """

    job_id: str
    events: tuple[Event, ...]

    @property
    def first(self) -> int:
        return self.events[0].version

    @property
    def last(self) -> int:
        return self.events[-1].version

    def fields(self) -> Doc:
        """The fields to set: the events' changes merged in order, and the last version."""
        merged: Doc = {}
        for event in self.events:
            merged.update(changes(event))
        return {**merged, "version": self.last}

    def above(self, version: int) -> Chain | None:
        """The events of this chain a view at `version` has not applied yet, if any."""
        newer = tuple(e for e in self.events if e.version > version)
        return Chain(self.job_id, newer) if newer else None


def plan(events: Iterable[Event]) -> list[Chain]:
    """A batch as one chain per job: its events that a fold would not skip as stale within
    the batch (each above every version before it), in log order. A later copy of a
    version already in the batch is dropped: the first copy on the log is the one kept."""
    kept: dict[str, list[Event]] = {}
    for event in events:
        chain = kept.setdefault(event.job_id, [])
        if not chain or event.version > chain[-1].version:
            chain.append(event)
    return [Chain(job_id, tuple(chain)) for job_id, chain in kept.items()]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event of a job's life, as the read model keeps it."""

    type: str
    event_id: str
    occurred_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    status: str
    created_at: datetime | None
    due_at: datetime | None
    updated_at: datetime | None
    version: int
    delay_s: float | None = None
    seq: int | None = None
    result: Photo | None = None
    error: str | None = None
    history: tuple[HistoryEntry, ...] = ()

    @property
    def public_seq(self) -> int | None:
        """The job's place in creation order as the API shows it (None for a v1 job)."""
        return self.seq if self.seq is not None and self.seq >= 1 else None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> JobView:
        result = doc.get("result")
        entries = (doc.get(HISTORY) or {}).values()
        return cls(
            id=doc["_id"],
            status=doc["status"],
            created_at=doc.get("created_at"),
            due_at=doc.get("due_at"),
            updated_at=doc.get("updated_at"),
            version=doc["version"],
            delay_s=doc.get("delay_s"),
            seq=doc.get("seq"),
            result=photo_from_dict(result) if result is not None else None,
            error=doc.get("error"),
            history=tuple(
                sorted((HistoryEntry(**entry) for entry in entries), key=lambda e: e.version)
            ),
        )
