"""Replay progress: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from jobline.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_with_rate_and_eta() -> None:
    bar = ProgressBar("events", Terminal())
    line = bar.render(500, 1000, 2.0)
    assert line.startswith("\r[###############...............] 500/1000 events")
    assert "250/s" in line
    assert "ETA 2.0 s" in line


def test_the_eta_follows_a_run_that_slows() -> None:
    """100 a second for 10 s, then 50 a second: half way (1,500 of 3,000 at 20 s) the mean
    pace (75/s) would promise 20 s where 30 are left; the pace since half of what is done
    (since 800 were done, at 8 s) promises about 26."""
    bar = ProgressBar("events", io.StringIO())
    for second in range(20):
        bar.render(100 * second if second <= 10 else 1000 + 50 * (second - 10), 3000, second)
    line = bar.render(1500, 3000, 20.0)
    eta = float(line.split("ETA ")[1].split()[0])
    assert 25 <= eta <= 27, line
    assert "58/s" in line


def test_a_pipe_gets_plain_lines_at_most_once_a_second() -> None:
    out = io.StringIO()
    bar = ProgressBar("events", out)
    for done in range(0, 1000, 100):
        bar(done, 1000)
    bar(1000, 1000)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("0/1000 events")
    assert lines[-1].startswith("1000/1000 events")
    assert len(lines) == 2
    assert "\r" not in out.getvalue()
