"""`jobline status`: where every consumer group stands in the log, and the jobs in the store.

group            state    members  lag  per partition (committed/end)
jobline.delay    Stable         2    0  0:120/120 1:98/98 ...
...
read model: 0 events behind the log
jobs: 3 pending, 1 processing, 50 resolved, 2 failed, 0 cancelled
"""

from __future__ import annotations

from collections.abc import Callable

from jobline.components import COMPONENTS
from projections.jobs.runner import PROJECTION
from projections.jobs.store import MongoJobViews
from runtime.positions import LogPositions, PartitionLag
from runtime.settings import Settings
from runtime.store import database, open_store


async def status(settings: Settings, say: Callable[[str], None] = print) -> int:
    """Print the report; 0 when every group has a member and the read model keeps up."""
    positions = LogPositions(settings, client_id=f"{settings.topic_prefix}.status")
    await positions.start(settings.startup_wait_s)
    healthy = True
    try:
        topic = settings.topics.jobs
        say(f"log: {topic}")
        say(f"{'group':<32} {'state':<19} {'members':>7} {'lag':>9}  per partition (committed/end)")
        projection_lag = 0
        for component in COMPONENTS.values():
            group = component.group(settings)
            lags = await positions.lags(group, topic)
            state, members = await positions.group(group)
            total = sum(p.lag for p in lags)
            healthy = healthy and members > 0
            if component.name == PROJECTION:
                projection_lag = total
            say(f"{group:<32} {state:<19} {members:>7} {total:>9}  {_partitions(lags)}")
        dead = sum((await positions.ends(settings.topics.dead_letters)).values())
        say(f"dead letters: {dead} records in {settings.topics.dead_letters}")
    finally:
        await positions.close()
    healthy = healthy and projection_lag <= settings.ready_max_lag
    say(f"read model: {projection_lag} events behind the log")
    client = open_store(settings, component="status")
    try:
        counts = await MongoJobViews(database(client, settings)["jobs"]).counts()
    finally:
        await client.close()
    say("jobs: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return 0 if healthy else 1


def _partitions(lags: list[PartitionLag]) -> str:
    return " ".join(
        f"{p.partition}:{'-' if p.committed is None else p.committed}/{p.end}" for p in lags
    )
