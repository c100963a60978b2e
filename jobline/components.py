"""The components jobline runs beside its API, in one registry: the CLI's commands, what
`jobline run` starts, the consumer groups whose offsets the embedded log's archive keeps, and
the services the deployment check expects in docker-compose.yml all come from here."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from processors.delay.shell import run as run_delay
from processors.fetcher.shell import run as run_fetcher
from projections.jobs.runner import PROJECTION
from projections.jobs.runner import run as run_projection
from runtime.eventlog import Durability
from runtime.processor import group_id
from runtime.settings import Settings

#: A component's main: runs until cancelled, consuming as group `<prefix>.<name>`.
Main = Callable[..., Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Component:
    name: str  # its command, its consumer group's suffix, its compose service
    help: str
    main: Main

    def run(
        self, settings: Settings, durability: Durability | None = None
    ) -> Coroutine[Any, Any, None]:
        return self.main(settings, durability, name=self.name)

    def group(self, settings: Settings) -> str:
        return group_id(settings, self.name)


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("delay", "emits JobDue when a job's time comes", run_delay),
        Component(
            "fetcher", "fetches each due job's photo, then resolves or fails it", run_fetcher
        ),
        Component(PROJECTION, "keeps the jobs read model in the store", run_projection),
    )
}


def groups(settings: Settings) -> list[str]:
    """The consumer groups of all components."""
    return [c.group(settings) for c in COMPONENTS.values()]
