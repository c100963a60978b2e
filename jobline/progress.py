"""Progress of a long run: a bar on a terminal, plain lines (at most one a second) otherwise.

Not tqdm: off a terminal tqdm either redraws its bar with carriage returns (one endless line
in a log file) or, with `disable=None`, says nothing; a replay run by a supervisor should
leave readable lines in its log.
"""

from __future__ import annotations

import bisect
import sys
import time
from typing import TextIO

WIDTH = 30
#: The rate shown, and the ETA, are the pace since half of what is done so far was done: a
#: replay slows as the store it fills grows, and the mean since the start then promised too
#: little time (12-23 % at half way in three full replays); a window of fixed length instead
#: wobbles with each pause of the store (tried: worse). Until that span is this long, the mean.
RECENT_MIN_S = 2.0
#: At most one (elapsed, done) sample kept per this many seconds.
SAMPLE_S = 0.1


class ProgressBar:
    def __init__(self, what: str, out: TextIO = sys.stderr) -> None:
        self._what = what
        self._out = out
        self._tty = out.isatty()
        self._started = time.monotonic()
        self._last_line = 0.0
        self._samples: list[tuple[float, int]] = []  # (elapsed, done), done non-decreasing

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self._tty and now - self._last_line < 1 and done < total:
            return
        self._last_line = now
        self._out.write(self.render(done, total, now - self._started))
        self._out.flush()

    def render(self, done: int, total: int, elapsed: float) -> str:
        if not self._samples or elapsed - self._samples[-1][0] >= SAMPLE_S:
            self._samples.append((elapsed, done))
        rate = self._pace(done, elapsed)
        eta = (total - done) / rate if rate > 0 else 0.0
        left = f"{eta:.1f}" if eta < 10 else f"{eta:.0f}"  # (a short run's last seconds)
        figures = f"{done}/{total} {self._what}  {rate:,.0f}/s  ETA {left} s"
        if not self._tty:
            return f"{figures}\n"
        filled = WIDTH * done // total if total else WIDTH
        return f"\r[{'#' * filled}{'.' * (WIDTH - filled)}] {figures}   "

    def _pace(self, done: int, elapsed: float) -> float:
        half = bisect.bisect_left(self._samples, done / 2, key=lambda sample: sample[1])
        if half < len(self._samples):
            since, then = self._samples[half]
            if elapsed - since >= RECENT_MIN_S and done > then:
                return (done - then) / (elapsed - since)
        return done / elapsed if elapsed > 0 else 0.0

    def finish(self) -> None:
        if self._tty:
            self._out.write("\n")
