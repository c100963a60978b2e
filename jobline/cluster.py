"""jobline's components as separate processes (`jobline api`, `jobline delay`, ...), as a
production deployment runs them: each on a free loopback port of its own (the API's, or a
processor's /healthz, /readyz and /metrics), several instances of one component in one group.
For tests and benchmarks: what an orchestrator does (start, stop with SIGTERM, kill, wait
until ready), on this machine."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobline.serving import free_port, until_answers
from runtime.settings import Settings


@dataclass
class Cluster:
    settings: Settings
    env: dict[str, str]
    logs: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)

    def start(self, name: str, component: str | None = None) -> None:
        """Start `name` (an instance of `component`, by default the component `name`); a
        restarted instance keeps its port."""
        port = self.ports.setdefault(name, free_port())
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(  # noqa: S603 - our own command
                [sys.executable, "-m", "jobline", component or name, "--port", str(port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills[name] += 1

    async def stop(self, name: str, timeout_s: float = 60) -> None:
        """Stop an instance as an orchestrator would (SIGTERM), and wait until it is gone.
        One still running after `timeout_s` writes its tasks' stacks to its log (SIGUSR1),
        is killed, and the error quotes the end of its log."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            tail = await asyncio.to_thread(stacks_and_log, process, self.logs / f"{name}.log")
            process.kill()
            process.wait()
            raise RuntimeError(f"{name} did not stop in {timeout_s:g} s; {tail}") from None

    async def ready(self, name: str, timeout_s: float = 60) -> None:
        """Wait until the instance says it is ready (its /readyz)."""
        await until_answers(f"{self.url(name)}/readyz", self.processes[name], timeout_s)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def stacks_and_log(process: subprocess.Popen[Any], log: Path) -> str:
    """For a jobline process that does not stop: its tasks' stacks written to its log
    (SIGUSR1, jobline.serving.dump_tasks), and the end of that log."""
    process.send_signal(signal.SIGUSR1)
    time.sleep(2)
    return "its log ends:\n" + log.read_text(errors="replace")[-20_000:]
