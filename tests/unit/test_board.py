"""The API's board: whatever the order of changes, loads and drops, every page it answers is
the plain sort of the jobs it must hold, and it sends the reader to the store exactly where
it runs out."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from api.board import Board, Position
from projections.jobs.view import STATUSES, JobView

AT = datetime(2026, 12, 3, tzinfo=UTC)


def view(seq: int, version: int) -> JobView:
    """Job `seq` at `version`: its status follows from the version as in a job's life."""
    status = STATUSES[min(version, 4) - 1] if version < 3 else ("resolved", "failed")[seq % 2]
    return JobView(
        id=f"job-{seq:04d}",
        status=status,
        created_at=AT,
        due_at=AT,
        updated_at=AT,
        version=version,
        seq=seq,
    )


# A change: job seq at a version; the jobs' seqs are drawn from a small range so that the
# same job changes several times, in any order.
changes = st.lists(st.tuples(st.integers(1, 60), st.integers(1, 3)), max_size=200)


def expected(latest: dict[str, JobView], bottom: int | None, status: str | None) -> list[str]:
    """The plain sort, newest first, of the jobs the board must hold."""
    held = [
        v
        for v in latest.values()
        if (bottom is None or (v.seq or 0) >= bottom) and status in (None, v.status)
    ]
    return [v.id for v in sorted(held, key=lambda v: (v.seq, v.id), reverse=True)]


def walk(board: Board, limit: int, status: str | None) -> tuple[list[str], Position | None]:
    """Every page the board answers, from the top; and where it sent the reader on."""
    found: list[str] = []
    after: Position | None = None
    while True:
        scan = board.scan(limit + 1, after, status)
        assert scan is not None
        page = scan.views[:limit]
        found += [v.id for v in page]
        if len(scan.views) <= limit:
            return found, scan.below
        last = page[-1]
        assert last.seq is not None
        after = (last.seq, last.id)


@settings(max_examples=150, deadline=None)
@given(
    loaded=changes,
    later=changes,
    size=st.integers(1, 40),
    limit=st.integers(1, 7),
    complete=st.booleans(),
)
def test_pages_of_the_board_are_a_plain_sort_of_what_it_holds(
    loaded: list[tuple[int, int]],
    later: list[tuple[int, int]],
    size: int,
    limit: int,
    complete: bool,
) -> None:
    latest: dict[str, JobView] = {}

    def remember(v: JobView) -> None:
        if v.id not in latest or latest[v.id].version < v.version:
            latest[v.id] = v

    snapshot: dict[str, JobView] = {}
    for seq, version in loaded:
        v = view(seq, version)
        if v.id not in snapshot or snapshot[v.id].version < v.version:
            snapshot[v.id] = v
    newest = sorted(snapshot.values(), key=lambda v: v.seq or 0, reverse=True)[:size]
    complete = complete and len(newest) == len(snapshot)
    board = Board(size)
    board.load(newest, complete, [])
    for v in newest:
        remember(v)
    for seq, version in later:
        v = view(seq, version)
        board.add(v)
        if board.bottom is None or seq >= board.bottom:
            remember(v)

    assert len(board) <= size * 1.1 + 1
    for status in (None, *STATUSES):
        found, below = walk(board, limit, status)
        assert found == expected(latest, board.bottom, status), status
        assert below == (None if board.bottom is None else (board.bottom, ""))
    for v in latest.values():
        if board.bottom is None or (v.seq or 0) >= board.bottom:
            assert board.get(v.id) == v


def test_a_board_that_is_not_live_answers_nothing() -> None:
    board = Board(10)
    board.add(view(1, 1))
    assert board.scan(5, None, None) is None
    assert board.get("job-0001") is None
    assert board.counts() is None
    board.load([view(1, 1)], True, [{"_id": "~counts/3", "counts": {"pending": 1}}])
    assert board.counts() == {
        "pending": 1,
        "processing": 0,
        "resolved": 0,
        "failed": 0,
        "cancelled": 0,
    }
    board.reset()
    assert board.scan(5, None, None) is None


def test_counts_take_the_newest_shard_documents_and_ignore_a_stale_insert() -> None:
    board = Board(10)
    board.load([], True, [{"_id": "~counts/0", "counts": {"pending": 5, "resolved": 2}}])
    board.counted({"_id": "~counts/0", "counts": {"pending": 1}}, inserted=True)  # stale
    board.counted({"_id": "~counts/1", "counts": {"failed": 1}}, inserted=True)
    board.counted({"_id": "~counts/0", "counts": {"pending": 4, "resolved": 3}}, inserted=False)
    assert board.counts() == {
        "pending": 4,
        "processing": 0,
        "resolved": 3,
        "failed": 1,
        "cancelled": 0,
    }


def test_a_cursor_below_the_board_goes_to_the_store() -> None:
    board = Board(3)
    board.load([view(s, 1) for s in (9, 8, 7)], False, [])
    assert board.bottom == 7
    assert board.scan(5, (6, "job-0006"), None) is None
    scan = board.scan(5, (8, "job-0008"), None)
    assert scan is not None
    assert [v.seq for v in scan.views] == [7]
    assert scan.below == (7, "")
