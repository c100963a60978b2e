"""Pure cores: delay decisions, fetcher decisions, job requests, offsets, cursors."""

from __future__ import annotations

import random
from datetime import timedelta
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.commands import pick_delay, request_job
from processors.delay.core import is_due, job_due, seconds_until_due
from processors.fetcher.core import NOT_JSON, Fail, Retry, backoff_s, interpret, outcome
from projections.jobs.store import InvalidCursor, decode_cursor, encode_cursor
from projections.jobs.view import JobView
from runtime.clock import utc_now
from runtime.offsets import OffsetTracker
from schema import JobFailed, JobRequested, JobResolved
from tests.unit.events import photo

NOW = utc_now()


def _requested(delay_s: float) -> JobRequested:
    return request_job(job_id="j", event_id="e", now=NOW, delay_s=delay_s, idempotency_key=None)


def test_a_job_is_due_at_its_due_time_and_never_before() -> None:
    job = _requested(30)
    assert not is_due(job, NOW + timedelta(seconds=29.999))
    assert is_due(job, NOW + timedelta(seconds=30))
    assert seconds_until_due(job, NOW) == 30
    assert seconds_until_due(job, NOW + timedelta(seconds=31)) == 0
    with pytest.raises(ValueError, match="not due"):
        job_due(job, NOW)


def test_job_due_has_an_id_derived_from_the_job() -> None:
    job = _requested(5)
    first = job_due(job, NOW + timedelta(seconds=5))
    again = job_due(job, NOW + timedelta(seconds=9))
    assert first.event_id == again.event_id
    assert first.due_at == job.due_at
    assert first.version == 2


@given(st.integers(0, 10_000))
def test_delays_are_whole_steps_within_the_range(seed: int) -> None:
    delay = pick_delay(random.Random(seed), 5, 300, 5)
    assert 5 <= delay <= 300
    assert delay % 5 == 0


def test_every_step_of_the_range_can_be_drawn() -> None:
    rng = random.Random(1)
    assert {pick_delay(rng, 5, 300, 5) for _ in range(5000)} == {5.0 * i for i in range(1, 61)}
    assert {pick_delay(rng, 0.2, 1.0, 0.2) for _ in range(500)} == {0.2, 0.4, 0.6, 0.8, 1.0}


def test_the_request_fixes_the_due_time_once() -> None:
    job = _requested(45)
    assert job.due_at == NOW + timedelta(seconds=45)
    assert job.version == 1


PHOTO_JSON = {
    "id": "x",
    "width": 1,
    "height": 2,
    "color": "#fff",
    "blur_hash": "00",
    "alt_description": None,
    "urls": dict.fromkeys(("raw", "full", "regular", "small", "thumb"), "https://i/x"),
    "links": {"html": "https://u/x", "download_location": "https://api/x/download"},
    "user": {"name": "N", "username": "n", "links": {"html": "https://u/@n"}},
}


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {}, PHOTO_JSON, list),
        (200, {}, [PHOTO_JSON, {"id": 2}], list),
        (200, {}, [], Fail),
        (200, {}, {"id": 1}, Fail),
        (200, {}, NOT_JSON, Fail),
        (429, {}, None, Retry),
        (403, {"x-ratelimit-remaining": "0"}, None, Retry),
        (403, {}, {"errors": ["Rate Limit Exceeded"]}, Retry),
        (403, {"x-ratelimit-remaining": "10"}, {"errors": ["Forbidden"]}, Fail),
        (401, {}, None, Fail),
        (404, {}, {"errors": ["Not found"]}, Fail),
        (500, {}, None, Retry),
        (503, {}, None, Retry),
    ],
)
def test_unsplash_answers_become_photo_retry_or_failure(
    status: int, headers: dict[str, str], body: object, expected: type
) -> None:
    assert isinstance(interpret(status, headers, body), expected)


def test_failures_say_why_and_backoff_grows_with_full_jitter() -> None:
    answer = interpret(404, {}, {"errors": ["Not found"]})
    assert isinstance(answer, Fail)
    assert "404" in answer.reason
    assert "Not found" in answer.reason
    assert interpret(429, {}, None) == Retry("Unsplash's rate limit was reached", True)
    assert interpret(503, {}, None) == Retry("Unsplash answered 503 (no details)")
    rng = Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (8, 30.0)]:
        waits = [backoff_s(attempt, 0.5, 30, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.8 * ceiling  # spread over the whole range: full jitter
        assert min(waits) < 0.2 * ceiling


def test_the_outcome_is_resolved_with_a_photo_or_failed_with_the_reason() -> None:
    due = job_due(_requested(5), NOW + timedelta(seconds=5))
    resolved = outcome(due, photo(), NOW)
    failed = outcome(due, "Unsplash answered 503", NOW)
    assert isinstance(resolved, JobResolved)
    assert isinstance(failed, JobFailed)
    assert resolved.event_id == failed.event_id  # one terminal event per job, whichever wins
    assert resolved.version == failed.version == due.version + 1 == 3
    assert failed.reason == "Unsplash answered 503"


def test_offsets_commit_only_below_the_oldest_held_record() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.hold(0, offset)
    for offset in (0, 1, 3, 4):
        tracker.release(0, offset)
    assert tracker.committable(0) == 2
    assert tracker.to_commit() == {0: 2}
    tracker.committed({0: 2})
    assert tracker.to_commit() == {}
    tracker.release(0, 2)
    assert tracker.to_commit() == {0: 5}
    tracker.forget({0})
    assert tracker.committable(0) is None


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=200))
def test_the_committable_offset_is_the_lowest_held_whatever_the_order(
    steps: list[tuple[bool, int]],
) -> None:
    tracker, held, seen = OffsetTracker(), set(), None
    for holding, offset in steps:  # holds, releases, holds again, in any order
        if holding:
            tracker.hold(0, offset)
            held.add(offset)
            seen = max(seen or 0, offset + 1)
        else:
            tracker.release(0, offset)
            held.discard(offset)
        assert tracker.committable(0) == (min(held) if held else seen)


def test_cursors_round_trip_and_refuse_garbage() -> None:
    view = JobView(
        id="j1", status="pending", created_at=NOW, due_at=NOW, updated_at=NOW, version=1, seq=42
    )
    assert decode_cursor(encode_cursor(view)) == (42, "j1")
    assert decode_cursor("-9007199254740992.a-b_c") == (-(2**53), "a-b_c")
    # Empty; no dot; not a number; a number past 18 digits (a store's 64 bits); not an id.
    assert decode_cursor("4.") == (4, "")  # below every job of seq 4
    for garbage in ("", "garbage!", "42", "x.j1", "1234567890123456789.j1", "4.j 1", ".j1"):
        with pytest.raises(InvalidCursor):
            decode_cursor(garbage)
