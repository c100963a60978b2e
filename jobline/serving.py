"""Running ASGI apps and whole components inside one event loop, stopped by signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
from collections.abc import Coroutine, Generator
from typing import Any

import httpx
import uvicorn


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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def run_until_signalled(main: Coroutine[Any, Any, int | None]) -> int:
    """Run `main`; SIGINT or SIGTERM cancels it, and it gets to clean up before we exit."""

    async def runner() -> int:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task or 0
        except asyncio.CancelledError:
            return 0

    return asyncio.run(runner())
