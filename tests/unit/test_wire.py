"""Writing live changes at once (api/wire.py): what a connection takes in one turn of the
event loop is written together at its end, in order; what it cannot take it refuses."""

from __future__ import annotations

import asyncio

import pytest

from api.wire import _Batched


class _Connection:
    def __init__(self) -> None:
        self.takes = True
        self.open = True
        self.writes: list[list[str]] = []

    def writer(self) -> _Batched:
        return _Batched(lambda: self.takes, lambda: self.open, self.writes.append)


async def test_what_a_connection_takes_in_a_turn_is_written_once_at_its_end() -> None:
    one, other = _Connection(), _Connection()
    write_one, write_other = one.writer(), other.writer()
    assert write_one("a")
    assert write_other("x")
    assert write_one("b")
    assert one.writes == other.writes == []  # not before the turn ends
    await asyncio.sleep(0)
    assert one.writes == [["a", "b"]]
    assert other.writes == [["x"]]
    assert write_one("c")
    await asyncio.sleep(0)
    assert one.writes == [["a", "b"], ["c"]]


async def test_a_connection_that_cannot_take_more_refuses_and_one_that_closed_gets_nothing() -> (
    None
):
    full, closing = _Connection(), _Connection()
    full.takes = False
    assert not full.writer()("a")
    assert closing.writer()("b")
    closing.open = False  # (before the turn ends)
    await asyncio.sleep(0)
    assert full.writes == closing.writes == []


async def test_one_connection_failing_to_write_leaves_the_others_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(texts: list[str]) -> None:
        raise ConnectionResetError

    good = _Connection()
    assert _Batched(lambda: True, lambda: True, broken)("a")
    assert good.writer()("b")
    await asyncio.sleep(0)
    assert good.writes == [["b"]]
    assert "could not write" in caplog.text
