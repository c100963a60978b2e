"""The `jobline` command."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from api.app import create_app
from jobline.components import COMPONENTS
from jobline.embedded import run_all
from jobline.progress import ProgressBar
from jobline.serving import AppServer, run_until_signalled
from processors.fetcher.unsplash import check as unsplash_check
from projections.jobs.replay import MAX_REPORTED, replay
from runtime.logs import configure_logging
from runtime.settings import Settings
from standin import StandIn
from standin import create_app as create_stand_in

DEFAULT_PORT = 8000
STAND_IN_PORT = 8010


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = {
        "run": (
            "everything: the embedded broker and store when none is configured, "
            "the stand-in when no Unsplash key is set, the API and all processors",
            DEFAULT_PORT,
        ),
        "api": ("the REST and GraphQL API and the page", DEFAULT_PORT),
        "stand-in": ("the local Unsplash stand-in", STAND_IN_PORT),
    }
    for name, (help_text, port) in serving.items():
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=port)
    for component in COMPONENTS.values():
        commands.add_parser(
            component.name,
            help=f"the {component.name} alone: {component.help} (scale out by group)",
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
    settings = Settings()
    configure_logging(settings.log_level)
    return run_until_signalled(_command(args, settings))


async def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        return await run_all(settings, args.host, args.port)
    if args.command in ("api", "stand-in"):
        return await _serve(args, settings)
    if args.command == "replay":
        return await _replay(settings, verify=args.verify)
    if args.command == "unsplash-check":
        logging.getLogger("httpx").setLevel(logging.WARNING)  # the one sentence is the answer
        works, said = await unsplash_check(settings)
        print(said)
        return 0 if works else 1
    await COMPONENTS[args.command].run(settings)
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
    started = time.monotonic()
    result = await replay(settings, bar, verify=verify)
    bar.finish()
    took = time.monotonic() - started
    print(
        f"{'verified' if verify else 'rebuilt'} {result.documents} jobs from {result.events} "
        f"events in {took:.1f} s ({result.events / max(took, 1e-9):,.0f} events/s)"
        + (f"; skipped {result.skipped} undecodable records" if result.skipped else "")
    )
    if not verify:
        print("swapped the rebuilt model in")
        return 0
    for line in result.differences[:MAX_REPORTED]:
        print(f"  {line}")
    print(f"{len(result.differences)} differences")
    return 1 if result.differences else 0
