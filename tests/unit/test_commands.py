"""Every transition of a job, as given events / when a command / then events: the commands
the API decides (cancel, retry), the JobDue the delay processor decides and the outcome the
fetcher decides, each from the state it read, and what the fold makes of the log, races
included."""

from __future__ import annotations

from datetime import timedelta
from functools import reduce

import pytest

from api.commands import cancel_job, retry_job
from api.errors import WrongState
from processors.delay.core import job_due
from processors.fetcher.core import outcome
from projections.jobs.view import JobStatus, JobView, evolve
from runtime.clock import utc_now
from schema import (
    Event,
    JobCancelled,
    JobDue,
    JobFailed,
    JobResolved,
    JobRetried,
    derived_event_id,
)
from tests.unit.events import RETRIED_AND_RESOLVED, job_life, photo

NOW = utc_now()


def given(*events: Event) -> JobView:
    view = reduce(evolve, events, None)
    assert view is not None
    return view


def _failed() -> list[Event]:
    return job_life("j", NOW, resolved=False)


def _retried(delay_s: float = 30) -> tuple[list[Event], JobRetried]:
    life = _failed()
    retry = retry_job(given(*life), NOW + timedelta(minutes=1), delay_s)
    return life, retry


def test_cancel_a_pending_job() -> None:
    requested = job_life("j", NOW)[0]
    then = cancel_job(given(requested), NOW)
    assert isinstance(then, JobCancelled)
    assert (then.job_id, then.version) == ("j", 2)
    assert then.event_id == derived_event_id("j", "cancel@2")
    assert given(requested, then).status is JobStatus.CANCELLED


@pytest.mark.parametrize("upto", [2, 3])  # processing, resolved
def test_cancel_anything_but_a_pending_job_is_refused(upto: int) -> None:
    with pytest.raises(WrongState, match="only a pending job can be cancelled") as refused:
        cancel_job(given(*job_life("j", NOW)[:upto]), NOW)
    assert refused.value.status in ("processing", "resolved")


def test_retry_a_failed_job_starts_a_new_wait() -> None:
    life, then = _retried(delay_s=30)
    assert (then.version, then.delay_s) == (4, 30)
    assert then.due_at == then.occurred_at + timedelta(seconds=30)
    assert then.event_id == derived_event_id("j", "retry@4")
    view = given(*life, then)
    assert (view.status, view.version, view.error) == (JobStatus.PENDING, 4, None)
    assert (view.due_at, view.delay_s) == (then.due_at, 30)
    assert view.created_at == life[0].occurred_at  # still the job it was


@pytest.mark.parametrize("upto", [1, 2, 3])  # pending, processing, resolved
def test_retry_anything_but_a_failed_job_is_refused(upto: int) -> None:
    with pytest.raises(WrongState, match="only a failed job can be retried"):
        retry_job(given(*job_life("j", NOW)[:upto]), NOW, 5)


def test_a_retry_gets_its_own_job_due_and_outcome_with_ids_of_their_own() -> None:
    life, retry = _retried()
    first_due, first_outcome = life[1], life[2]
    due = job_due(retry, retry.due_at)
    assert (due.version, due.due_at) == (5, retry.due_at)
    assert due.event_id == derived_event_id("j", "due@5") != first_due.event_id
    assert job_due(retry, retry.due_at + timedelta(seconds=3)).event_id == due.event_id
    resolved = outcome(due, photo("second"), NOW)
    assert isinstance(resolved, JobResolved)
    assert resolved.version == 6
    assert resolved.event_id == derived_event_id("j", "outcome@6") != first_outcome.event_id
    view = given(*life, retry, due, resolved)
    assert (view.status, view.version, view.result) == (JobStatus.RESOLVED, 6, photo("second"))
    assert [e.type for e in view.history] == RETRIED_AND_RESOLVED


def test_first_attempts_keep_the_ids_they_had_before_retries() -> None:
    requested, due, _ = job_life("j", NOW)
    assert job_due(requested, due.due_at).event_id == derived_event_id("j", "due")  # type: ignore[arg-type]
    assert outcome(due, "no", NOW).event_id == derived_event_id("j", "outcome")  # type: ignore[arg-type]


def test_a_job_can_fail_and_be_retried_again_and_again() -> None:
    events, retry = _retried()
    events.append(retry)
    for _ in range(2):
        due = job_due(events[-1], events[-1].due_at)  # type: ignore[attr-defined]
        events += [due, outcome(due, "Unsplash answered 503", NOW)]
        events.append(retry_job(given(*events), NOW, 5))
    view = given(*events)
    assert (view.status, view.version) == (JobStatus.PENDING, 10)
    assert [e.type for e in view.history].count("JobRetried") == 3
    assert len({e.event_id for e in events}) == len(events)


def test_two_retries_of_one_failure_decide_the_same_version() -> None:
    """The service stores the first decision of a version and appends it for both callers;
    on the log a second JobRetried of that version changes nothing."""
    life = _failed()
    first = retry_job(given(*life), NOW, 30)
    second = retry_job(given(*life), NOW + timedelta(seconds=1), 60)
    assert first.version == second.version
    assert first.event_id == second.event_id
    assert given(*life, first, second) == given(*life, first)


def test_a_retried_job_can_be_cancelled_while_it_waits() -> None:
    life, retry = _retried()
    cancel = cancel_job(given(*life, retry), NOW)
    assert cancel.version == 5
    due = job_due(retry, retry.due_at)
    cancelled_first = given(*life, retry, cancel, due)
    assert (cancelled_first.status, cancelled_first.version) == (JobStatus.CANCELLED, 5)
    due_first = given(*life, retry, due, cancel)
    assert (due_first.status, due_first.version) == (JobStatus.PROCESSING, 5)


def test_an_outcome_of_an_earlier_attempt_changes_nothing_later() -> None:
    life, retry = _retried()
    first_due = life[1]
    assert isinstance(first_due, JobDue)
    late = outcome(first_due, photo("late copy"), NOW)  # a copy of attempt one's outcome slot
    view = given(*life, retry)
    assert given(*life, retry, late) == view
    assert isinstance(life[2], JobFailed)
