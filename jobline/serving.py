"""Running ASGI apps and whole components inside one event loop, stopped by signals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine, Generator
from types import FrameType
from typing import Any, TextIO

import httpx
import uvicorn

from runtime.metrics import watch_event_loop


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AppServer:
    def __init__(self, app: Any, host: str, port: int, ws_ping_s: float | None = 20) -> None:
        self.app = app
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            ws_ping_interval=ws_ping_s,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve in the background; returns once listening (the app's lifespan has run)."""
        self._task = asyncio.create_task(self._serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("server stopped while starting")
            await asyncio.sleep(0.02)

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit as exit_:  # uvicorn exits when the app's start-up fails
            raise RuntimeError(f"server failed to start (exit {exit_.code}); see the log") from None

    @property
    def port(self) -> int:
        sockets = [s for server in self._server.servers for s in server.sockets]
        port: int = sockets[0].getsockname()[1]
        return port

    @property
    def task(self) -> asyncio.Task[None]:
        assert self._task is not None
        return self._task

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


async def until_answers(
    url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 60
) -> None:
    """Poll `GET url` until it answers 200 (a process just started, say); raises
    RuntimeError if `process` exits first or `timeout_s` pass."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode} before {url} answered")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{url} did not answer 200 within {timeout_s:g} s")
            await asyncio.sleep(0.2)


def dump_tasks(out: TextIO | None = None) -> None:
    """Every task of the running loop, with the chain of awaits it waits in (a task's own
    stack shows only its outermost coroutine)."""
    out = out or sys.stderr
    tasks = asyncio.all_tasks()
    print(f"jobline: {len(tasks)} tasks (pid {os.getpid()})", file=out)
    for task in tasks:
        state = "cancelling" if task.cancelling() else "pending"
        print(f"task {task.get_name()} ({state}):", file=out)
        for frame in _awaiting(task.get_coro()):
            code = frame.f_code
            print(f"  {code.co_filename}:{frame.f_lineno} {code.co_name}", file=out)
    out.flush()


def _awaiting(awaitable: Any) -> list[FrameType]:
    frames: list[FrameType] = []
    while awaitable is not None and len(frames) < 50:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return frames


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def run_until_signalled(
    main: Coroutine[Any, Any, int | None],
    new_loop: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """Run `main` on a loop from `new_loop` (asyncio's own if None: see `loop_factory`);
    SIGINT or SIGTERM cancels it, and it gets to clean up before we exit. SIGUSR1 writes
    every task's stack to stderr (what a process that does not stop waits for)."""

    async def runner() -> int:
        task = asyncio.ensure_future(main)
        watching = asyncio.create_task(watch_event_loop())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        try:
            return await task or 0
        except asyncio.CancelledError:
            return 0
        finally:
            watching.cancel()

    with asyncio.Runner(loop_factory=new_loop) as running:
        return running.run(runner())


def loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for `uvloop`, and for `auto` when it is installed; None (asyncio's
    own) for `asyncio`."""
    if event_loop == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 (optional: not on every platform)
    except ImportError:
        if event_loop == "uvloop":
            raise RuntimeError("JOBLINE_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
