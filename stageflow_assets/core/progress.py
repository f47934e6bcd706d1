"""What the CLI shows while work goes: stages as they run, Whisper's position, runs as they end.

One reporter per process, installed by the CLI for the length of a command (`shown`). The stage
runtime, the transcript asset and the run sequence report into `current()`, which does nothing
unless the CLI installed one: the daemon, the UI's runs and the Celery workers never do. What
goes wrong in a reporter never fails the work: these hooks swallow its errors.

On a terminal the reporter is a live display (`core/progress_live.py`, rich) on stderr; on
anything else it writes plain lines there, two spaces in, as the CLI's progress lines always were.
The result lines (`job:`, `run:`, `wrote:`) are never the reporter's: the CLI prints them on
stdout once the display has stopped, so they stay whole whatever the terminal's width.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

ASR_LINE_EVERY_S = 5.0  # plain output: Whisper's position at most this often (the first at once)


class Reporter:
    """Does nothing: what runs when no CLI installed a reporter."""

    def note(self, line: str) -> None:
        """A progress line the pipeline says (`detected language: en`)."""

    def out(self, line: str) -> None:
        """A result line for stdout while work still goes (`journey: KEY`)."""
        print(line, flush=True)

    def run_started(self, what: str) -> None: ...

    def run_ended(self, what: str) -> None: ...

    def stage_started(self, stage: str, partition: str) -> None: ...

    def stage_done(self, stage: str, partition: str, outcome: str, seconds: float) -> None:
        """`outcome`: success, reused, skipped, failed or interrupted."""

    def asr_position(self, position_s: float, duration_s: float) -> None:
        """How far speech recognition is in the audio."""

    def close(self) -> None: ...


NOTHING = Reporter()
_installed: Reporter = NOTHING


def current() -> Reporter:
    return _installed


def stage_started(stage: str, partition: str) -> None:
    _quietly(lambda: _installed.stage_started(stage, partition))


def stage_done(stage: str, partition: str, outcome: str, seconds: float) -> None:
    _quietly(lambda: _installed.stage_done(stage, partition, outcome, seconds))


def asr_position(position_s: float, duration_s: float) -> None:
    """The `on_progress` callback an ASR backend is given: (position, duration) in seconds."""
    _quietly(lambda: _installed.asr_position(position_s, duration_s))


def run_started(what: str) -> None:
    _quietly(lambda: _installed.run_started(what))


def run_ended(what: str) -> None:
    _quietly(lambda: _installed.run_ended(what))


def _quietly(report) -> None:
    if _installed is NOTHING:
        return
    try:
        report()
    except Exception:  # noqa: BLE001 - showing progress must never fail the work
        pass


@contextmanager
def shown(live: bool | None = None) -> Iterator[Reporter]:
    """A reporter on stderr for the block: live on a terminal, plain lines otherwise.

    It is stopped before the block's exception leaves, so the CLI's one error line comes after
    a clean terminal.
    """
    if live is None:
        live = live_terminal(sys.stderr)
    if live:
        from stageflow_assets.core.progress_live import LiveReporter

        reporter: Reporter = LiveReporter(sys.stderr)
    else:
        reporter = PlainReporter()
    with installed(reporter):
        yield reporter


@contextmanager
def installed(reporter: Reporter) -> Iterator[Reporter]:
    """`reporter` hears this process's progress for the block; closed at its end."""
    global _installed
    previous, _installed = _installed, reporter
    try:
        yield reporter
    finally:
        _installed = previous
        reporter.close()


def live_terminal(stream) -> bool:
    """A terminal that can redraw: a TTY, not TERM=dumb."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


class AsrClock:
    """Whisper's position in the audio and, from the rate so far, the time left: estimated at
    each new position, counting down between them."""

    def __init__(self) -> None:
        self.started: tuple[float, float] | None = None  # (monotonic time, position) of the first report
        self.updated = 0.0  # when the position last moved
        self.position = 0.0
        self.duration = 0.0

    def update(self, position_s: float, duration_s: float) -> None:
        now = time.monotonic()
        self.duration = max(duration_s, 0.0)
        position = min(max(position_s, 0.0), self.duration) if self.duration else max(position_s, 0.0)
        if self.started is None:
            self.started = (now, position)
        if position != self.position or self.updated == 0.0:
            self.position, self.updated = position, now

    @property
    def fraction(self) -> float:
        return self.position / self.duration if self.duration else 0.0

    def eta_s(self) -> float | None:
        if self.started is None:
            return None
        since, first = self.started
        done = self.position - first
        if done <= 0:
            return None
        at_update = max(self.duration - self.position, 0.0) * (self.updated - since) / done
        return max(at_update - (time.monotonic() - self.updated), 0.0)

    def text(self, short: bool = False) -> str:
        """`45% of 143 s, ETA 6 s` (`short`: `45%, ETA 6 s`)."""
        eta = self.eta_s()
        line = f"{self.fraction:.0%}" if short else f"{self.fraction:.0%} of {seconds_text(self.duration)}"
        return line if eta is None else f"{line}, ETA {seconds_text(eta)}"


def seconds_text(seconds: float) -> str:
    """`0.4 s`, `6 s`, `2 min 05 s`, `1 h 02 min`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 100:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def run_line(what: str, success: bool, run_id: str) -> str:
    """A run that ended (its error comes once, as the command's error line)."""
    return f"{what}: {'ok' if success else 'failed'} (run {run_id})"


def stage_line(stage: str, partition: str, outcome: str, seconds: float) -> str:
    word = {"success": "done"}.get(outcome, outcome)
    return f"stage {stage} [{partition}] {word} {seconds_text(seconds)}"


class PlainReporter(Reporter):
    """Lines on stderr, two spaces in: a line per finished stage, Whisper's position now and then."""

    def __init__(self) -> None:
        self.stage = "transcript"
        self.clock: AsrClock | None = None
        self.last_asr_line: float | None = None

    def _line(self, line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    def note(self, line: str) -> None:
        self._line(line)

    def stage_started(self, stage: str, partition: str) -> None:
        self.stage = stage
        self.clock, self.last_asr_line = None, None

    def stage_done(self, stage: str, partition: str, outcome: str, seconds: float) -> None:
        self.clock = None
        self._line(stage_line(stage, partition, outcome, seconds))

    def asr_position(self, position_s: float, duration_s: float) -> None:
        if self.clock is None:
            self.clock = AsrClock()
        self.clock.update(position_s, duration_s)
        if self.clock.eta_s() is None:
            return  # nothing decoded yet
        now = time.monotonic()
        if self.last_asr_line is not None and now - self.last_asr_line < ASR_LINE_EVERY_S:
            return
        self.last_asr_line = now
        self._line(f"{self.stage}: {self.clock.text()}")
