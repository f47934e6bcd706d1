"""The CLI's live progress display on a terminal (rich), on stderr.

Finished stages, finished runs and the pipeline's notes are printed above the live region, in
the same words as the plain lines, and stay. The live region holds what goes now: each run, its
stage with the time it has taken, and Whisper's position as a bar with an ETA. Every line of
the region is cut to the terminal's width, so it never wraps and always redraws in place; it is
erased when the display stops (the CLI's result and error lines follow on a clean terminal).
Writes to `sys.stderr` meanwhile (warnings) are printed above the region too.
"""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console, Group
from rich.live import Live
from rich.padding import Padding
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from stageflow_assets.core.progress import AsrClock, Reporter, seconds_text, stage_line

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
REFRESH_PER_S = 4
BAR_WIDTH = 40
MIN_BAR = 6
OUTCOME_STYLE = {"failed": "red", "interrupted": "yellow", "skipped": "yellow"}


class LiveReporter(Reporter):
    def __init__(self, stream, console: Console | None = None) -> None:
        self.console = console or Console(file=stream, soft_wrap=True, highlight=False)
        self._lock = threading.Lock()
        self.runs: dict[str, float] = {}  # what -> when it started
        self.stages: dict[tuple[str, str], float] = {}  # (stage, partition) -> when it started
        self.clock: AsrClock | None = None
        self.live = Live(
            get_renderable=self._view, console=self.console, transient=True, auto_refresh=True,
            refresh_per_second=REFRESH_PER_S, redirect_stdout=False, redirect_stderr=True,
        )
        self.live.start(refresh=True)

    def _print(self, text: Text) -> None:
        self.console.print(text, soft_wrap=True)

    def note(self, line: str) -> None:
        self._print(Text(f"  {line}"))

    def out(self, line: str) -> None:
        """Stop the region (erased), write the line on stdout, go on: never inside the region."""
        self.live.stop()
        try:
            print(line, file=sys.stdout, flush=True)
        finally:
            self.live.start(refresh=True)

    def run_started(self, what: str) -> None:
        with self._lock:
            self.runs[what] = time.monotonic()

    def run_ended(self, what: str) -> None:
        with self._lock:
            self.runs.pop(what, None)
            if not self.runs:  # a stage its run's interrupt left unreported goes with the run
                self.stages.clear()
                self.clock = None

    def stage_started(self, stage: str, partition: str) -> None:
        with self._lock:
            self.stages[(stage, partition)] = time.monotonic()
            self.clock = None

    def stage_done(self, stage: str, partition: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self.stages.pop((stage, partition), None)
            self.clock = None
        self._print(Text(f"  {stage_line(stage, partition, outcome, seconds)}",
                         style=OUTCOME_STYLE.get(outcome, "dim")))

    def asr_position(self, position_s: float, duration_s: float) -> None:
        with self._lock:
            if self.clock is None:
                self.clock = AsrClock()
            self.clock.update(position_s, duration_s)

    def close(self) -> None:
        self.live.stop()

    def _view(self) -> Group:
        """The region now: a line per run and per stage, what changes first (the partition, the
        least news, is what a narrow terminal cuts), each cut to the width; Whisper's bar."""
        now = time.monotonic()
        frame = SPINNER[int(now * 10) % len(SPINNER)]
        lines: list = []
        with self._lock:
            runs, stages, clock = list(self.runs.items()), list(self.stages.items()), self.clock
        for what, since in runs:
            lines.append(_one_row(f"{frame} {seconds_text(now - since)}  {what}", "bold"))
        for (stage, partition), since in stages:
            lines.append(_one_row(f"  {frame} {stage}  {seconds_text(now - since)}  [{partition}]"))
        if clock is not None and clock.duration:
            room = self.console.width - 4 - MIN_BAR - 1
            where = clock.text() if len(clock.text()) <= room else clock.text(short=True)
            width = max(min(BAR_WIDTH, self.console.width - 5 - len(where)), MIN_BAR)
            row = Table.grid(padding=(0, 1))
            row.add_row(ProgressBar(total=clock.duration, completed=clock.position, width=width),
                        _one_row(where))
            lines.append(Padding(row, (0, 0, 0, 4)))
        return Group(*lines)


def _one_row(line: str, style: str = "") -> Text:
    return Text(line, style=style, no_wrap=True, overflow="ellipsis")
