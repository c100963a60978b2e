"""`jobline run` as a child process of a test: start it, read its banner, find its children,
stop it (only the processes the test started, by PID)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from jobline.cluster import stacks_and_log


def child_pids(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def still_running(pids: set[int]) -> list[bytes]:
    return [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in pids if alive(pid)]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


#: Where each started process's stderr (its log) goes, by PID.
_STDERR: dict[int, Path] = {}


def start_jobline(args: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    """`jobline ARGS` with only these JOBLINE_* variables, and no creation limit unless they
    set one (a test's clients all come from 127.0.0.1). Its log goes to a file in `cwd`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    log = cwd / f"jobline-{time.monotonic_ns()}.stderr"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobline", *args],
            cwd=cwd,
            env=clean | {"JOBLINE_CREATE_RATE_PER_S": "0"} | env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    _STDERR[process.pid] = log
    return process


def exit_code(process: subprocess.Popen[str], timeout_s: float) -> int:
    """The process's exit code once it exits; if it does not within `timeout_s`, a failure
    that shows the stacks of its tasks (SIGUSR1) and the end of its log."""
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        tail = stacks_and_log(process, _STDERR[process.pid])
        raise AssertionError(f"still running after {timeout_s:g} s; {tail}") from None


def read_until(process: subprocess.Popen[str], marker: str) -> str:
    assert process.stdout is not None
    output = ""
    deadline = time.monotonic() + 60
    while marker not in output:
        line = process.stdout.readline()
        assert line, f"exited early ({process.poll()}): {output}"
        output += line
        assert time.monotonic() < deadline, output
    return output


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


FAST = {
    "JOBLINE_DELAY_MIN_S": "0.5",
    "JOBLINE_DELAY_MAX_S": "1",
    "JOBLINE_DELAY_STEP_S": "0.5",
    # Bursts of a thousand jobs due within a second: the stand-in's allowance lifted (as the
    # benchmarks do), or the fetchers pace them over Unsplash's production hour.
    "JOBLINE_STAND_IN_HOURLY_LIMIT": str(10**9),
}
