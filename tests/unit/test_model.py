"""Where the read model is (projections/jobs/model.py): how often the pointer is read."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from pymongo.asynchronous.database import AsyncDatabase

from projections.jobs.model import LEGACY, Located, ReadModel
from runtime.store import Document


class Pointer:
    """A stand-in for the pointer's collection: each find_one takes a moment and is counted."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] | None = None
        self.reads = 0

    async def find_one(self, query: Any) -> dict[str, Any] | None:
        self.reads += 1
        await asyncio.sleep(0.01)
        return self.doc

    def __getitem__(self, name: str) -> Pointer:
        return self


def _model(pointer: Pointer, now: list[float]) -> ReadModel:
    return ReadModel(cast(AsyncDatabase[Document], pointer), ttl_s=1.0, clock=lambda: now[0])


async def test_callers_that_find_the_pointer_too_old_share_one_read() -> None:
    pointer, now = Pointer(), [0.0]
    model = _model(pointer, now)
    assert await model.located() == LEGACY
    assert pointer.reads == 1
    now[0] = 0.5
    assert await asyncio.gather(*(model.located() for _ in range(50))) == [LEGACY] * 50
    assert pointer.reads == 1, "within the TTL: not read again"

    pointer.doc = {"collection": "jobs_g1", "generation": 1, "since": {"0": 7}}
    now[0] = 1.5
    found = await asyncio.gather(*(model.located() for _ in range(50)))
    assert found == [Located("jobs_g1", 1, {0: 7}, True)] * 50
    assert pointer.reads == 2, "one read for the fifty"
    await model.located(fresh=True)
    assert pointer.reads == 3, "asked for a fresh one: read"


async def test_a_read_older_than_the_one_held_is_not_taken() -> None:
    """(A read begun before a swap and answered after another read saw it.)"""
    pointer, now = Pointer(), [0.0]
    model = _model(pointer, now)
    pointer.doc = {"collection": "jobs_g2", "generation": 2}
    assert (await model.located()).generation == 2
    pointer.doc = None
    assert (await model.located(fresh=True)).generation == 2
