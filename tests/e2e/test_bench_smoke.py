"""The benchmark suite at its smoke size: it runs from one command and reports every figure.
Nothing about timings is asserted (this machine is shared and noisy)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _suite(tmp_path: Path, *args: str, timeout_s: float) -> dict[str, Any]:
    """`benchmarks/suite.py ARGS --size smoke`, run to its end: its JSON report."""
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/suite.py",
            *args,
            "--size",
            "smoke",
            "--json",
            str(report_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(report_path.read_text())
    return report


@pytest.mark.timeout(900)
def test_the_benchmark_suite_runs_and_reports_every_figure(tmp_path: Path) -> None:
    report = _suite(tmp_path, timeout_s=840)
    assert set(report) >= {
        "bare",
        "intake",
        "pipeline",
        "growth",
        "reads",
        "keeping_up",
        "rss_mib",
        "table",
    }
    for load in (*report["bare"].values(), *report["intake"].values()):
        assert load["answers"] > 0
    assert report["growth"][-1]["jobs_stored_at_end"] >= 600
    assert len(report["reads"]) == 2
    for routes in report["reads"].values():
        assert len(routes) == 7
        assert all(figures["answers"] > 0 for figures in routes.values())
    assert report["keeping_up"]["jobs_due_during_growth"] > 0
    flow = report["pipeline"]
    assert flow["jobs"] > 0
    assert flow["settled"] == flow["jobs"], flow
    assert flow["store_per_job"]["requests"] > 0
    assert any(name.startswith("store") for name in flow["cpu_ms_per_job"])
    assert {name.split(" (pid")[0] for name in report["rss_mib"]} >= {
        "jobline run",
        "store (SecantusDB)",
    }
    assert "| POST /jobs, 50 clients: req/s |" in report["table"]


@pytest.mark.timeout(540)
def test_the_timers_and_replay_benchmarks_run_from_one_command(tmp_path: Path) -> None:
    both = _suite(tmp_path, "timers", "replay", timeout_s=520)
    assert set(both) == {"timers", "replay", "table"}
    assert "| JobDue lateness" in both["table"]
    assert "| replay: " in both["table"]

    report = both["timers"]  # no timer lost, early or doubled
    assert report["lateness"]["all"]["jobs"] == report["parameters"]["jobs"]
    assert (report["missing"], report["fired_twice"], report["lateness"]["all"]["early"]) == (
        0,
        0,
        0,
    )
    assert report["rearmed_timers"] > 0
    assert report["rss_mib"]["peak"] >= report["rss_mib"]["idle"] > 0
    assert "| JobDue lateness p50 / p99 / max, steady (ms)" in report["table"]

    report = both["replay"]  # the API reads throughout
    assert report["events"] > report["jobs"] == 2_000
    assert report["output"][-1].startswith("swapped the rebuilt model in: serving it after ")
    assert 0 < report["serving_after_s"] <= report["replay_s"]
    assert f"rebuilt {report['jobs']} jobs from {report['events']} events" in report["output"][0]
    assert report["output"][1].strip().startswith("read and fold ")  # where the time went
    reads = report["reads_during_replay"]
    assert reads.get("200", 0) > 0
    # Never a job missing nor a failure; a store too busy during the swap may make a read
    # say 503 (retry), which the full run counts (README, Performance).
    assert set(reads) <= {"200", "503"}, reads
    assert report["insert_many_docs_per_s"] > 0
    assert report["events_per_s"] > 0


@pytest.mark.timeout(300)
def test_the_push_benchmark_runs_and_every_subscriber_gets_every_resolution(
    tmp_path: Path,
) -> None:
    report = _suite(tmp_path, "push", timeout_s=280)
    for face in ("graphql", "sse"):
        push = report[face]["push"]
        assert push["subscribers"] == report["parameters"]["subscribers"]
        assert push["jobs_resolved"] > 0
        assert push["deliveries"] == push["subscribers"] * push["jobs_resolved"]
        assert (push["dropped"], push["connections_ended"], push["early"]) == (0, 0, 0)
    for name in ("websocket", "sse"):
        assert report["baseline"][name]["deliveries"] > 0
    for phase in ("quiet", "graphql", "sse"):
        assert report[phase]["serving"]["creations"]["errors"] == 0
        # The stages: the probe saw the resolutions commit, the processes timed their parts.
        stages, metered = report[phase]["push"]["stages"], report[phase]["push"]["metered"]
        assert not any(math.isnan(stage["p50_ms"]) for stage in stages.values()), stages
        assert all(stage["p50_ms"] is not None for stage in metered.values()), metered
    assert "| push p50 / p99 (ms)" in report["table"]
    assert "| pipeline stages p50, p99 (ms), quiet phase" in report["table"]


@pytest.mark.timeout(300)
def test_the_soak_benchmark_samples_every_process_and_route(tmp_path: Path) -> None:
    report = _suite(tmp_path, "soak", timeout_s=280)
    assert len(report["samples"]) >= 3
    for sample in report["samples"]:
        assert {name.split(" (pid")[0] for name in sample["rss_mib"]} >= {
            "jobline run",
            "store (SecantusDB)",
        }
        assert all(route["answers"] > 0 for route in sample["routes"].values())
        assert sample["event_loop_lag"]["ticks"] > 0  # (a tick every 50 ms: about 200)
    assert report["samples"][-1]["jobs"]["resolved"] > 0
    assert report["totals"]["POST /jobs"]["errors"] == 0
    assert any(name.startswith("p99 ms: GET /jobs") for name in report["trend"])
    assert "p99 ms: event loop lag" in report["trend"]
    assert "errors of all answers" in report["table"]
