"""Reading a whole topic back, for assertions about what is in the log."""

from __future__ import annotations

from typing import Any

from runtime.eventlog import is_gap
from runtime.logreader import LogReader
from runtime.settings import Settings
from schema import Event, decode


async def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of the topic, from offset 0 up to its end as of now."""
    return [record async for batch in LogReader(settings, topic).batches() for record in batch]


async def read_events(settings: Settings) -> list[Event]:
    records = await read_topic(settings, settings.topics.jobs)
    return [decode(r.value) for r in records if not is_gap(r)]
