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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

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
        """Stop an instance as an orchestrator would (SIGTERM), and wait until it is gone."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, timeout_s)

    async def ready(self, name: str, timeout_s: float = 60) -> None:
        """Wait until the instance says it is ready (its /readyz)."""
        await until_answers(f"{self.url(name)}/readyz", self.processes[name], timeout_s)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
