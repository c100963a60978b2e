"""The jobs view: given events, when folded, then the view; and the store adapter's documents
and updates, which must keep exactly what the fold gives, batch by batch."""

from __future__ import annotations

from functools import reduce
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from projections.jobs.store import document_update, from_document, to_document
from projections.jobs.view import JobStatus, JobView, evolve
from runtime.clock import utc_now
from schema import Event, JobCancelled
from tests.unit.events import job_life
from tests.unit.strategies import histories

Views = dict[str, JobView]


def fold(views: Views, event: Event) -> Views:
    return {**views, event.job_id: evolve(views.get(event.job_id), event)}


def test_a_job_life_goes_pending_processing_resolved() -> None:
    requested, due, resolved = job_life("j", utc_now())
    view = evolve(None, requested)
    assert (view.status, view.version, view.created_at) == ("pending", 1, requested.occurred_at)
    view = evolve(view, due)
    assert (view.status, view.version) == (JobStatus.PROCESSING, 2)
    view = evolve(view, resolved)
    assert (view.status, view.version) == (JobStatus.RESOLVED, 3)
    assert view.result == resolved.photo  # type: ignore[attr-defined]
    assert view.updated_at == resolved.occurred_at


def test_a_failed_job_keeps_its_reason_and_no_result() -> None:
    life = job_life("j", utc_now(), resolved=False)
    view = reduce(evolve, life, None)
    assert view is not None
    assert (view.status, view.error, view.result) == ("failed", life[-1].reason, None)  # type: ignore[attr-defined]


def test_the_history_lists_each_event_once_in_order() -> None:
    life = job_life("j", utc_now())
    view = reduce(evolve, [life[0], life[1], life[0], life[2], life[1]], None)
    assert view is not None
    assert [(e.type, e.version, e.event_id) for e in view.history] == [
        (e.TYPE, e.version, e.event_id) for e in life
    ]
    assert [e.occurred_at for e in view.history] == [e.occurred_at for e in life]


def test_stale_events_change_nothing() -> None:
    requested, due, resolved = job_life("j", utc_now())
    view = evolve(evolve(evolve(None, requested), due), resolved)
    assert evolve(view, due) is view
    assert evolve(view, requested) is view


def _cancel(job_id: str, version: int) -> JobCancelled:
    return JobCancelled(
        event_id=f"c-{job_id}", job_id=job_id, version=version, occurred_at=utc_now()
    )


def test_a_cancel_first_on_the_log_wins_the_pending_job() -> None:
    requested, due, resolved = job_life("j", utc_now())
    view = reduce(evolve, [requested, _cancel("j", 2), due, resolved], None)
    assert view is not None
    assert (view.status, view.version) == (JobStatus.CANCELLED, 2)
    assert [e.type for e in view.history] == ["JobRequested", "JobCancelled"]
    assert view.result is None


def test_a_job_due_first_on_the_log_makes_a_later_cancel_stale() -> None:
    requested, due, resolved = job_life("j", utc_now())
    view = reduce(evolve, [requested, due, _cancel("j", 2), resolved], None)
    assert view is not None
    assert (view.status, view.version) == (JobStatus.RESOLVED, 3)
    assert [e.type for e in view.history] == ["JobRequested", "JobDue", "JobResolved"]


@given(histories())
def test_replaying_twice_equals_replaying_once(history: list[Event]) -> None:
    """(On logs as they can be: an outcome follows its JobDue. A log that puts an outcome
    before any JobDue is no log a fetcher writes, and its first replay ignores the outcome.)"""
    once = reduce(fold, history, {})
    assert reduce(fold, history, once) == once


@given(histories())
def test_a_view_survives_its_document(history: list[Event]) -> None:
    for view in reduce(fold, history, {}).values():
        assert from_document(to_document(view)) == view


def _apply(doc: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """What a Mongo-wire store does with `$set` (dotted paths) and `$unset`: the pure model
    of it, for this property only (the integration tests run the real store)."""
    result = {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}
    for path, value in update.get("$set", {}).items():
        head, dot, rest = path.partition(".")
        if dot:
            result.setdefault(head, {})[rest] = value
        else:
            result[head] = value
    for path in update.get("$unset", {}):
        head, dot, rest = path.partition(".")
        (result.get(head, {}) if dot else result).pop(rest if dot else head, None)
    return result


@given(histories(), st.lists(st.integers(1, 5), max_size=6))
def test_batches_written_as_updates_hold_what_one_fold_gives(
    history: list[Event], cuts: list[int]
) -> None:
    """Any interleaving of jobs' events, redelivered or not, cut into batches: the documents
    the store adapter's updates leave equal the fold of the whole log."""
    batches, rest = [], list(history)
    for size in cuts:
        batches.append(rest[:size])
        rest = rest[size:]
    batches.append(rest)
    stored: dict[str, dict[str, Any]] = {}
    for batch in batches:
        for job_id in dict.fromkeys(e.job_id for e in batch):
            doc = stored.get(job_id)
            before = from_document(doc) if doc is not None else None
            after = reduce(evolve, [e for e in batch if e.job_id == job_id], before)
            assert after is not None
            if doc is None:
                stored[job_id] = to_document(after)
            else:
                stored[job_id] = _apply(doc, document_update(doc, to_document(after)))
    folded = reduce(fold, history, {})
    assert stored == {job_id: to_document(view) for job_id, view in folded.items()}
