"""The jobs view: given events, when applied, then the view; replay and batching properties."""

from __future__ import annotations

from functools import reduce
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from projections.jobs.view import Chain, JobView, changes, evolve, plan, set_fields
from runtime.clock import utc_now
from schema import Event
from tests.unit.events import job_life
from tests.unit.strategies import events, histories

Docs = dict[str, dict[str, Any]]


def fold(docs: Docs, event: Event) -> Docs:
    return {**docs, event.job_id: evolve(docs.get(event.job_id), event)}


def apply_plan(docs: Docs, batch: list[Event]) -> Docs:
    """What the store does with a planned batch: for each chain, the merged fields of its
    events above the stored version, set in one write."""
    result = dict(docs)
    for chain in plan(batch):
        view = result.get(chain.job_id)
        current: Chain | None = chain.above(view["version"] if view is not None else 0)
        if current is not None:
            result[chain.job_id] = set_fields(view or {"_id": chain.job_id}, current.fields())
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


def test_the_history_lists_each_event_once_in_order() -> None:
    life = job_life("j", utc_now())
    view = reduce(evolve, [life[0], life[1], life[0], life[2], life[1]], None)  # type: ignore[arg-type]
    history = JobView.from_doc(view).history
    assert [(e.type, e.version, e.event_id) for e in history] == [
        (e.TYPE, e.version, e.event_id) for e in life
    ]
    assert [e.occurred_at for e in history] == [e.occurred_at for e in life]


def test_set_fields_sets_dotted_paths_like_mongodb() -> None:
    doc = {"_id": "j", "history": {"1": "a"}, "status": "pending"}
    assert set_fields(doc, {"history.2": "b", "status": "processing"}) == {
        "_id": "j",
        "history": {"1": "a", "2": "b"},
        "status": "processing",
    }
    assert doc["history"] == {"1": "a"}  # the input is left alone


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
