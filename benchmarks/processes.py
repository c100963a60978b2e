"""The processes of a run: every process below a pid, by name, with its memory and CPU."""

from __future__ import annotations

import os
from pathlib import Path


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return kib / 1024


def process_tree_rss(pid: int) -> dict[str, float]:
    """RSS (MiB) of `pid` and every process below it, by command name."""
    out: dict[str, float] = {}
    for proc, name in _tree(pid):
        try:
            out[f"{name} (pid {proc})"] = round(rss_mib(proc), 1)
        except OSError:
            continue
    return out


def process_tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by `pid` and every process below it."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for proc, name in _tree(pid):
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[f"{name} (pid {proc})"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _tree(pid: int) -> list[tuple[int, str]]:
    out = []
    for proc in [pid, *descendants(pid)]:
        try:
            cmdline = Path(f"/proc/{proc}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        out.append((proc, _process_name([w.decode() for w in cmdline if w])))
    return out


def _process_name(words: list[str]) -> str:
    if "secantus" in words:
        return "store (SecantusDB)"
    if any("tansu" in w for w in words[:1]):
        return "broker (Tansu)"
    if "jobline" in words[:3]:
        at = words.index("jobline")
        return " ".join(words[at : at + 2])  # jobline run, jobline api, ...
    if any(w.endswith("suite.py") for w in words[:2]):
        return "benchmark (its clients)"
    return " ".join(words[:2])


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
