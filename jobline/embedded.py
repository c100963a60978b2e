"""`jobline run`: the whole system in one command.

Starts what is not configured (broker, store, Unsplash stand-in) and then the API, the delay
processor, the fetcher and the projection, all in this process's event loop. Stops everything,
in order, on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from pydantic import SecretStr

from api.app import create_app
from jobline.children import Child, broker, store, store_uri
from jobline.components import COMPONENTS, groups
from jobline.serving import AppServer, free_port
from runtime.aio import cancel_all
from runtime.archive import ArchiveMismatch, LogArchive
from runtime.eventlog import ensure_topics
from runtime.settings import Settings
from runtime.store import database, open_store
from standin import StandIn
from standin import create_app as create_stand_in

log = logging.getLogger(__name__)


async def run_all(settings: Settings, host: str, port: int) -> int:
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        embedded_log = not settings.kafka_bootstrap_servers
        watched: list[asyncio.Task[None]] = []
        settings = await _embedded_backends(settings, stack, watched)
        settings = await _stand_in(settings, host, stack)
        archive = None
        if embedded_log:
            try:
                archive, archiver = await _archive(settings, stack)
            except ArchiveMismatch as error:
                print(f"jobline: cannot start: {error}", file=sys.stderr, flush=True)
                return 1
            watched.append(archiver)
        # Every append is archived before it counts as done (a create is acknowledged, an
        # offset it derives from is released), and a processor acts on a record only once it
        # is archived: nothing depends on a record the in-memory broker could still lose.
        # The API writes its records through; the processors wait for the archiver's batches.
        api = AppServer(create_app(settings, archive), host, port)
        batched = archive.batched() if archive is not None else None
        tasks = [
            asyncio.create_task(component.run(settings, batched), name=component.name)
            for component in COMPONENTS.values()
        ]
        stack.push_async_callback(cancel_all, *tasks)
        await api.start()
        stack.push_async_callback(api.stop)
        _announce(host, api.port, settings, time.monotonic() - started)
        try:
            done, _ = await asyncio.wait(
                [*tasks, *watched, api.task], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            log.info("stopping")
        for task in done:
            if (failure := task.exception()) is not None:
                print(f"jobline: {task.get_name()} stopped: {failure}", file=sys.stderr, flush=True)
                log.error("a component stopped", exc_info=failure)
                return 1
    return 0


#: Group settings on the embedded broker. Tansu holds every JoinGroup open for half the
#: session timeout (and a SyncGroup up to 80 % of it) before it answers, whoever is in the
#: group: with the default 10 s a processor (re)started alone waits ~6 s for its partitions,
#: with these ~2 s.
EMBEDDED_GROUPS: dict[str, Any] = {
    "kafka_session_timeout_ms": 3000,
    "kafka_heartbeat_interval_ms": 500,
    "kafka_rebalance_timeout_ms": 3000,
}


async def _embedded_backends(
    settings: Settings, stack: AsyncExitStack, watched: list[asyncio.Task[None]]
) -> Settings:
    update: dict[str, Any] = {}
    data_dir = settings.data_dir
    if not settings.kafka_bootstrap_servers:
        port = free_port()
        watched.append(await _start(broker(port, data_dir), port, stack))
        # The embedded broker rejects the idempotent producer (DESIGN.md §4); effects are
        # idempotent without it.
        update |= {
            "kafka_bootstrap_servers": f"127.0.0.1:{port}",
            "kafka_idempotence": False,
            **EMBEDDED_GROUPS,
        }
    if not settings.mongodb_uri:
        port = free_port()
        watched.append(await _start(store(port, data_dir), port, stack))
        update["mongodb_uri"] = store_uri(port)
    return settings.model_copy(update=update)


async def _archive(
    settings: Settings, stack: AsyncExitStack
) -> tuple[LogArchive, asyncio.Task[None]]:
    """Restore the embedded broker's log from the store, then keep archiving it."""
    await ensure_topics(settings)
    client = open_store(settings, component="run")
    stack.push_async_callback(client.close)
    archive = LogArchive(settings, database(client, settings), groups(settings))
    restored = await archive.restore()
    if restored:
        log.info("restored %s records into the embedded broker", restored)
    task = asyncio.create_task(archive.run(), name="archive")
    stack.push_async_callback(cancel_all, task)
    return archive, task


async def _start(child: Child, port: int, stack: AsyncExitStack) -> asyncio.Task[None]:
    """Start a child; the task returned fails if the child exits without being asked to."""
    child.start()
    stack.push_async_callback(child.stop)
    await child.wait_port("127.0.0.1", port)
    log.info("%s listening on 127.0.0.1:%s", child.name, port)
    watcher = asyncio.create_task(child.exited(), name=child.name)
    stack.push_async_callback(cancel_all, watcher)
    return watcher


async def _stand_in(settings: Settings, host: str, stack: AsyncExitStack) -> Settings:
    if settings.unsplash_access_key is not None:
        return settings
    server = AppServer(create_stand_in(StandIn(limit=settings.stand_in_hourly_limit)), host, 0)
    await server.start()
    stack.push_async_callback(server.stop)
    return settings.model_copy(
        update={
            "unsplash_base_url": f"http://{_display_host(host)}:{server.port}",
            "unsplash_access_key": SecretStr("stand-in"),
        }
    )


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104


def _announce(host: str, port: int, settings: Settings, took_s: float) -> None:
    base = f"http://{_display_host(host)}:{port}"
    photos = (
        "local stand-in"
        if settings.unsplash_access_key
        and (settings.unsplash_access_key.get_secret_value() == "stand-in")
        else "Unsplash"
    )
    print(
        f"\njobline is up in {took_s:.1f} s\n"
        f"  page      {base}/\n"
        f"  GraphiQL  {base}/graphql\n"
        f"  API docs  {base}/docs\n"
        f"  broker    {settings.kafka_bootstrap_servers}\n"
        f"  store     {settings.mongodb_uri}\n"
        f"  photos    {photos} ({settings.unsplash_base_url})\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
