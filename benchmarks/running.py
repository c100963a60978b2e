"""Running `jobline run` for a benchmark: a free loopback port, a throwaway data dir, stopped
with Ctrl-C as a user stops it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from jobline.children import broker, store, store_uri
from jobline.embedded import EMBEDDED_GROUPS
from jobline.serving import free_port, loop_factory, until_answers
from runtime.settings import Settings, environment_for

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def on_jobline_run(measure: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """Start `jobline run`, run `measure(base_url)` once it is up, then stop it."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as data_dir:
        process = start(port, data_dir)
        try:
            asyncio.run(wait_until_up(base_url, process))
            asyncio.run(measure(base_url))
        finally:
            stop(process)


#: Jobs due within seconds, so that the pipeline's every stage runs while measured.
SHORT_DELAYS = {
    "JOBLINE_DELAY_MIN_S": "0.5",
    "JOBLINE_DELAY_MAX_S": "3",
    "JOBLINE_DELAY_STEP_S": "0.5",
}
#: The read route the page's first view asks for, over GraphQL.
GRAPHQL_JOBS = json.dumps({"query": "{ jobs(first: 30) { edges { node { id status } } } }"})

#: The loop every process of a benchmark runs on, jobline's and the bare baseline's alike:
#: JOBLINE_EVENT_LOOP as the suite was given it (`asyncio` measures without uvloop).
EVENT_LOOP = os.environ.get("JOBLINE_EVENT_LOOP", "auto")


def serving_stack() -> dict[str, str]:
    """What the processes of a benchmark run on: the event loop (EVENT_LOOP as it resolves
    here) and uvicorn's HTTP parser (httptools when installed, else h11)."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return {"event_loop": "uvloop" if loop_factory(EVENT_LOOP) else "asyncio", "http": http}


#: For `jobline run` under a load (see `start`).
LOAD_SETTINGS = {
    "JOBLINE_STAND_IN_HOURLY_LIMIT": str(10**9),
    "JOBLINE_CREATE_RATE_PER_S": "0",  # every load client is this one address
}


def start(
    port: int, data_dir: str, settings: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`jobline run` on the embedded default: JOBLINE_* variables of this environment are
    ignored, `settings` (JOBLINE_* variables) are applied. The stand-in's hourly allowance is
    lifted: a load test is no hour of Unsplash, and the stand-in must not be its limit; so
    is the per-client creation limit, since all the load comes from one address. Its
    log goes to the file named by BENCH_LOG (appended), if set; else nowhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    env |= LOAD_SETTINGS | {"JOBLINE_EVENT_LOOP": EVENT_LOOP} | (settings or {})
    env["JOBLINE_DATA_DIR"] = data_dir
    log_path = os.environ.get("BENCH_LOG")
    return launch(["-m", "jobline", "run", "--port", str(port)], env, log_path)


def start_bare(port: int, log: str | Path | None = None) -> subprocess.Popen[bytes]:
    """The bare app (benchmarks/bare.py), the baseline of the intake and push benchmarks."""
    return launch([str(ROOT / "benchmarks" / "bare.py"), str(port)], None, log)


def launch(
    args: list[str], env: dict[str, str] | None, log: str | Path | None
) -> subprocess.Popen[bytes]:
    """This interpreter with `args`, in the project's directory; its output appended to
    `log` (or dropped)."""
    with open(log, "ab") if log else open(os.devnull, "wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user stops it; SIGKILL only if it does not stop in time."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_until_up(base_url: str, process: subprocess.Popen[bytes]) -> None:
    try:
        await until_answers(f"{base_url}/healthz", process, START_TIMEOUT_S)
    except RuntimeError as error:
        raise SystemExit(f"jobline run: {error}") from None


@asynccontextmanager
async def embedded_backends(data_dir: Path, **settings: Any) -> AsyncIterator[Settings]:
    """The embedded broker and store as child processes on free ports (stopped on exit),
    and settings that point at them, with `jobline run`'s group settings for that broker
    (plus `settings`)."""
    broker_port, store_port = free_port(), free_port()
    children = [broker(broker_port, data_dir), store(store_port, data_dir)]
    try:
        for child, port in zip(children, (broker_port, store_port), strict=True):
            child.start()
            await child.wait_port("127.0.0.1", port)
        yield Settings(
            _env_file=None,  # type: ignore[call-arg]
            kafka_bootstrap_servers=f"127.0.0.1:{broker_port}",
            kafka_idempotence=False,
            mongodb_uri=store_uri(store_port),
            **EMBEDDED_GROUPS | settings,
        )
    finally:
        for child in reversed(children):
            await child.stop()


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment without JOBLINE_* variables, and those that point a
    jobline command at `settings`' broker and store, with its group settings; `extra` as
    given (JOBLINE_* names)."""
    return (
        environment_for(
            kafka_bootstrap_servers=settings.bootstrap_servers,
            kafka_idempotence="false",
            mongodb_uri=settings.store_uri,
            **{name: getattr(settings, name) for name in EMBEDDED_GROUPS},
            log_level="WARNING",
            event_loop=EVENT_LOOP,
        )
        | extra
    )
