"""The allowance a pushed change shows (api/allowance.py): read once before the first
answer, then never waited for: a stale read is renewed in the background, once."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

from api import allowance as module
from api.allowance import Allowance
from runtime.settings import Settings


class _Collection:
    """Stands in for the account's collection: counts its reads, which wait for `gate`."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = asyncio.Event()

    async def find_one(self, query: Any) -> None:
        self.reads += 1
        await self.gate.wait()


async def test_only_the_first_answer_waits_for_a_read_and_a_stale_one_is_renewed_once(
    monkeypatch: Any,
) -> None:
    collection = _Collection()
    allowance = Allowance(collection, Settings())  # type: ignore[arg-type]
    first = allowance.known()
    assert inspect.isawaitable(first)
    collection.gate.set()
    assert await first is None  # (no account yet: nothing spent)
    assert collection.reads == 1
    assert allowance.known() is None  # fresh: at hand, no read
    assert collection.reads == 1

    collection.gate.clear()
    later = module.time.monotonic() + module.FRESH_S
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: later))
    assert allowance.known() is None  # stale: answered as last read, not awaited
    assert allowance.known() is None
    await asyncio.sleep(0)
    assert collection.reads == 2  # one read renewing it, under way
    collection.gate.set()
    await allowance.close()
