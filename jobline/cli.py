"""The `jobline` command."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from pydantic import ValidationError

from api.app import create_app
from jobline.components import COMPONENTS
from jobline.embedded import run_all
from jobline.progress import ProgressBar
from jobline.serving import AppServer, loop_factory, run_until_signalled
from jobline.status import status
from processors.fetcher.unsplash import check as unsplash_check
from projections.jobs.replay import MAX_REPORTED, REMOVAL, replay
from projections.jobs.runner import PROJECTION
from runtime.logs import configure_logging
from runtime.ops import ops_app, readiness_of
from runtime.processor import group_id
from runtime.settings import Settings, settings_problem
from runtime.startup import StartupError, preflight
from standin import StandIn
from standin import create_app as create_stand_in

STAND_IN_PORT = 8010
#: Commands that read the log and append nothing: no producer, whatever its settings.
READ_ONLY = ("replay", "status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = {
        "run": (
            "everything: the embedded broker and store when none is configured, "
            "the stand-in when no Unsplash key is set, the API and all processors"
        ),
        "api": "the REST and GraphQL API and the page",
        **{
            c.name: f"the {c.name} alone: {c.help} (scale out by group; serves /healthz, "
            "/readyz and /metrics)"
            for c in COMPONENTS.values()
        },
    }
    for name, help_text in serving.items():
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--host", help="default: JOBLINE_HOST (127.0.0.1)")
        sub.add_argument("--port", type=int, help="default: JOBLINE_PORT (8000)")
    stand_in = commands.add_parser("stand-in", help="the local Unsplash stand-in")
    stand_in.add_argument("--host", default="127.0.0.1")
    stand_in.add_argument("--port", type=int, default=STAND_IN_PORT)
    commands.add_parser(
        "status",
        help="every consumer group's members and lag, the read model's lag, the jobs' counts",
    )
    commands.add_parser(
        "unsplash-check",
        help="ask Unsplash once with the configured key: the quota left, or what is wrong",
    )
    replay_command = commands.add_parser(
        "replay", help="rebuild the read models from offset 0 of the log and swap them in"
    )
    replay_command.add_argument(
        "--verify",
        action="store_true",
        help="rebuild aside and compare with the live model instead of swapping",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        return _cannot_start(settings_problem(error))
    configure_logging(settings.log_level)
    if getattr(args, "host", None) is None and hasattr(args, "host"):
        args.host = settings.host
    if getattr(args, "port", None) is None and hasattr(args, "port"):
        args.port = settings.port
    try:
        new_loop = loop_factory(settings.event_loop)
    except RuntimeError as error:
        return _cannot_start(str(error))
    return run_until_signalled(_command(args, settings), new_loop)


def _cannot_start(problem: str) -> int:
    print(f"jobline: cannot start: {problem}", file=sys.stderr, flush=True)
    return 2


async def _command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.command not in ("stand-in", "unsplash-check"):
            # `run` starts the broker and the store that are not configured
            embedded = args.command == "run"
            await preflight(
                settings,
                broker=not embedded or bool(settings.kafka_bootstrap_servers),
                store=not embedded or bool(settings.mongodb_uri),
                produces=args.command not in READ_ONLY,
            )
        return await _dispatch(args, settings)
    except StartupError as error:
        return _cannot_start(str(error))


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        return await run_all(settings, args.host, args.port)
    if args.command in ("api", "stand-in"):
        return await _serve(args, settings)
    if args.command == "status":
        return await status(settings)
    if args.command == "replay":
        return await _replay(settings, verify=args.verify)
    if args.command == "unsplash-check":
        logging.getLogger("httpx").setLevel(logging.WARNING)  # the one sentence is the answer
        works, said = await unsplash_check(settings)
        print(said)
        return 0 if works else 1
    return await _component(args, settings)


async def _component(args: argparse.Namespace, settings: Settings) -> int:
    """One processor, with its operator's routes (/healthz, /readyz, /metrics) served."""
    name = args.command
    projection = group_id(settings, PROJECTION) if name == PROJECTION else None
    async with readiness_of(settings, name, projection_group=projection) as readiness:
        server = AppServer(ops_app(readiness), args.host, args.port)
        await server.start()
        print(
            f"{name} serving /healthz, /readyz, /metrics on http://{args.host}:{server.port}",
            flush=True,
        )
        try:
            await COMPONENTS[name].run(settings)
        finally:
            await server.stop()
    return 0


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    app: Any = (
        create_app(settings)
        if args.command == "api"
        else create_stand_in(StandIn(limit=settings.stand_in_hourly_limit))
    )
    server = AppServer(app, args.host, args.port)
    await server.start()
    print(f"{args.command} listening on http://{args.host}:{server.port}", flush=True)
    try:
        await server.task
    finally:
        await server.stop()
    return 0


async def _replay(settings: Settings, *, verify: bool) -> int:
    bar = ProgressBar("events")
    started, cpu = time.monotonic(), time.process_time()
    result = await replay(settings, bar, verify=verify)
    bar.finish()
    # Until the rebuilt model serves; deleting the old one comes after (its own phase).
    removing = result.phases.get(REMOVAL, 0.0)
    took = time.monotonic() - started - removing
    print(
        f"{'verified' if verify else 'rebuilt'} {result.documents} jobs from {result.events} "
        f"events in {took:.1f} s ({result.events / max(took, 1e-9):,.0f} events/s)"
        + (f"; skipped {result.skipped} undecodable records" if result.skipped else "")
    )
    print("  " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in result.phases.items()))
    print(f"  this process's CPU: {time.process_time() - cpu:.1f} s")
    if not verify:
        print(
            f"swapped the rebuilt model in: serving it after {took:.1f} s; "
            f"then deleted the {result.removed} jobs of the old one in {removing:.1f} s"
        )
        return 0
    for line in result.differences[:MAX_REPORTED]:
        print(f"  {line}")
    print(f"{len(result.differences)} differences")
    return 1 if result.differences else 0
