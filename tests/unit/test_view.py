"""The jobs view: given events, when applied, then the view; replay and batching properties."""

from __future__ import annotations

from functools import reduce
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from projections.jobs.view import JobView, changes, evolve, plan
from runtime.clock import utc_now
from schema import Event
from tests.unit.events import job_life
from tests.unit.strategies import events, histories

Docs = dict[str, dict[str, Any]]


def fold(docs: Docs, event: Event) -> Docs:
    return {**docs, event.job_id: evolve(docs.get(event.job_id), event)}


def apply_plan(docs: Docs, batch: list[Event]) -> Docs:
    """What the store does with a planned batch: set the merged fields where version < v."""
    result = dict(docs)
    for job_id, (version, fields) in plan(batch).items():
        current = result.get(job_id)
        if current is None:
            result[job_id] = {"_id": job_id, **fields, "version": version}
        elif current["version"] < version:
            result[job_id] = {**current, **fields, "version": version}
    return result


def test_a_job_life_goes_pending_processing_resolved() -> None:
    requested, due, resolved = job_life("j", utc_now())
    view = evolve(None, requested)
    assert (view["status"], view["version"]) == ("pending", 1)
    view = evolve(view, due)
    assert (view["status"], view["version"]) == ("processing", 2)
    view = evolve(view, resolved)
    assert (view["status"], view["version"]) == ("resolved", 3)
    assert JobView.from_doc(view).result == resolved.photo  # type: ignore[attr-defined]


def test_a_failed_job_keeps_its_reason_and_no_result() -> None:
    *_, failed = job_life("j", utc_now(), resolved=False)
    view = JobView.from_doc(reduce(evolve, job_life("j", utc_now(), resolved=False), None))  # type: ignore[arg-type]
    assert (view.status, view.error, view.result) == ("failed", failed.reason, None)  # type: ignore[attr-defined]


def test_stale_events_change_nothing() -> None:
    requested, due, resolved = job_life("j", utc_now())
    view = evolve(evolve(evolve(None, requested), due), resolved)
    assert evolve(view, due) == view
    assert evolve(view, requested) == view
    assert changes(resolved)["status"] == "resolved"


@given(st.lists(events, max_size=12))
def test_replaying_twice_equals_replaying_once(history: list[Event]) -> None:
    once = reduce(fold, history, {})
    assert reduce(fold, history, once) == once


@given(histories(), st.lists(st.integers(1, 5), max_size=6))
def test_batched_plans_equal_a_fold_of_evolve(history: list[Event], cuts: list[int]) -> None:
    batches, rest = [], list(history)
    for size in cuts:
        batches.append(rest[:size])
        rest = rest[size:]
    batches.append(rest)
    assert reduce(apply_plan, batches, {}) == reduce(fold, history, {})
