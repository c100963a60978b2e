"""The replay's fold: each job written once, the same views as folding every event."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from projections.jobs.replay import Fold
from projections.jobs.view import JobView, evolve
from schema import Event, JobRetried, derived_event_id
from tests.unit.events import job_life

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _retried(job_id: str) -> JobRetried:
    return JobRetried(
        event_id=derived_event_id(job_id, "retry@4"),
        job_id=job_id,
        version=4,
        occurred_at=AT + timedelta(seconds=9),
        due_at=AT + timedelta(seconds=20),
        delay_s=11,
    )


def _log(lives: list[tuple[bool, bool]]) -> list[Event]:
    """Jobs resolved or failed (some failed ones retried), their events interleaved as a
    live log has them: every first event, then every second, ..."""
    per_job = []
    for n, (resolved, retried) in enumerate(lives):
        events = job_life(f"job-{n}", AT, resolved=resolved, seq=n + 1)
        if not resolved and retried:
            events.append(_retried(f"job-{n}"))
        per_job.append(events)
    return [life[i] for i in range(4) for life in per_job if i < len(life)]


@given(
    lives=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=20),
    copies=st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_the_fold_writes_each_job_once_and_equals_folding_every_event(
    lives: list[tuple[bool, bool]], copies: list[int]
) -> None:
    log = _log(lives)
    log += [log[i % len(log)] for i in copies]  # copies of events, later on the log
    fold = Fold()
    written: list[JobView] = []
    for event in log:
        fold.take(event)
        written += fold.take_done()  # as the rebuild writes them, between batches
    written += fold.take_open()
    expected: dict[str, JobView] = {}
    for event in log:
        expected[event.job_id] = evolve(expected.get(event.job_id), event)
    assert sorted(view.id for view in written) == sorted(expected)  # once each
    assert {view.id: view for view in written} == expected
    assert fold.late == []  # final states are final: nothing newer follows them
    assert fold.statuses == Counter(view.status.value for view in expected.values())
    seqs = [view.seq for view in expected.values() if view.seq is not None]
    assert fold.seqs == [min(seqs), max(seqs)]
