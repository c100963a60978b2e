"""The `jobline` command."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from api.app import create_app
from jobline.embedded import run_all
from jobline.serving import AppServer, run_until_signalled
from jobline.standin import create_app as create_stand_in
from processors.delay.shell import run as delay
from processors.fetcher.shell import run as fetcher
from projections.jobs.runner import run as projection
from runtime.logs import configure_logging
from runtime.settings import Settings

DEFAULT_PORT = 8000
STAND_IN_PORT = 8010
PROCESSORS: dict[str, Callable[[Settings], Awaitable[None]]] = {
    "delay": delay,
    "fetcher": fetcher,
    "projection": projection,
}


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
    for name in PROCESSORS:
        commands.add_parser(name, help=f"the {name} processor alone (scale out by group)")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    return run_until_signalled(_command(args, settings))


async def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        return await run_all(settings, args.host, args.port)
    if args.command in ("api", "stand-in"):
        return await _serve(args, settings)
    await PROCESSORS[args.command](settings)
    return 0


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    app: Any = create_app(settings) if args.command == "api" else create_stand_in()
    server = AppServer(app, args.host, args.port)
    await server.start()
    print(f"{args.command} listening on http://{args.host}:{server.port}", flush=True)
    try:
        await server.task
    finally:
        await server.stop()
    return 0
