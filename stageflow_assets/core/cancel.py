"""Stopping runs this process executes: Ctrl-C, the UI's Terminate, a run's max runtime.

The CLI executes its runs in its own process with the in-process executor. Dagster turns a
SIGINT (or SIGTERM) that arrives during a step into `DagsterExecutionInterruptedError` inside
the step, and ends the run CANCELED when the run is marked CANCELING by then, FAILURE
otherwise. The tools a step started die with it (`providers.process.run_tool`). So:

* the UI's Terminate marks the run CANCELING (the default run launcher does that first, then
  finds no process it could signal); `RunWatcher` sees it and sends this process SIGINT, as
  Dagster's own run workers do when they are asked to stop;
* a run past its `dagster/max_runtime` tag is marked CANCELING by the watcher, then the same;
* Ctrl-C reaches the step directly; the stage runtime marks the run CANCELING
  (`mark_canceling`) before the interrupt leaves the stage body.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
import uuid

import dagster as dg

_SESSION = uuid.uuid4().hex[:16]


def session_id() -> str:
    """This process's id in the `stageflow/session` tag of the runs it executes."""
    return _SESSION


def mark_canceling(instance: dg.DagsterInstance, run_id: str, why: str) -> None:
    """Mark a run CANCELING unless it already is (or has ended), so an interrupt ends it CANCELED."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
        instance.report_run_canceling(run, message=why)


class RunWatcher:
    """A thread that stops the runs this process executes when they are to stop.

    * It polls the run storage (one indexed query every `poll_s`) for this session's runs that
      are CANCELING (the UI's Terminate, a Ctrl-C already seen) or past their
      `dagster/max_runtime`, and interrupts this process (SIGINT) until each has ended: a step
      that retries or a next step starts, and is stopped again.
    * It hears SIGINT and SIGTERM itself, through the signal wake-up fd (written by the C-level
      handler whatever Python handler Dagster has installed), and marks this session's running
      runs CANCELING: a Ctrl-C between two steps, which Dagster holds until the next step
      starts, then still ends the run CANCELED.

    A Celery worker's pool process watches the one run it executes (`run_id`) and hears no signal
    itself: the revoked task's SIGTERM arrives once, and an interrupt that lands in a finalizer is
    lost, so the watcher repeats it as long as the run is CANCELING.
    """

    def __init__(self, instance: dg.DagsterInstance, poll_s: float = 0.5, run_id: str | None = None) -> None:
        self.instance = instance
        self.poll_s = poll_s
        self.run_id = run_id
        self.stopped: dict[str, str] = {}  # run id -> why it was stopped
        self.heard_signal = False  # a Ctrl-C or SIGTERM reached this process while watching
        self._sent = 0  # SIGINTs the watcher sent itself and has not read back yet
        # this session's runs seen going, in order: the one to name when the database goes away
        self.seen: dict[str, None] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stageflow-run-watcher", daemon=True)
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._old_wakeup_fd = -1
        self._signalled_at: dict[str, float] = {}

    def __enter__(self) -> "RunWatcher":
        if self.run_id is None and threading.current_thread() is threading.main_thread():
            self._wake = socket.socketpair()
            for end in self._wake:
                end.setblocking(False)
            self._old_wakeup_fd = signal.set_wakeup_fd(self._wake[1].fileno(), warn_on_full_buffer=False)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._wake is not None:  # wake the thread from its wait: the command goes on at once
            try:
                self._wake[1].send(b"\0")
            except OSError:
                pass
        self._thread.join(timeout=5)
        if self._wake is not None:
            self._read_signals()  # one the thread had no time to read still says why the run stopped
            signal.set_wakeup_fd(self._old_wakeup_fd)
            for end in self._wake:
                end.close()
            self._wake = None

    def _loop(self) -> None:
        while not self._done.is_set():
            heard = self._wait_for_signal()
            if self._done.is_set():
                return
            try:
                if heard:
                    self._cancel_running("Ctrl-C or SIGTERM")
                self.check()
            except Exception:  # noqa: BLE001 - a busy database: look again at the next poll
                continue

    def _wait_for_signal(self) -> bool:
        if self._wake is None:
            self._done.wait(self.poll_s)
            return False
        readable, _, _ = select.select([self._wake[0]], [], [], self.poll_s)
        return bool(readable) and self._read_signals()

    def _read_signals(self) -> bool:
        try:
            signals = self._wake[0].recv(64)
        except (BlockingIOError, OSError):
            return False
        heard = False
        for number in signals:
            if number == signal.SIGINT and self._sent > 0:
                self._sent -= 1  # the watcher's own interrupt, not the user's
            elif number in (signal.SIGINT, signal.SIGTERM):
                heard = True
        self.heard_signal = self.heard_signal or heard
        return heard

    def _mine(self, *statuses: dg.DagsterRunStatus) -> list:
        from stageflow_assets.core.runs import SESSION_TAG

        which = {"run_ids": [self.run_id]} if self.run_id is not None else {"tags": {SESSION_TAG: session_id()}}
        return self.instance.get_run_records(filters=dg.RunsFilter(statuses=list(statuses), **which))

    def _cancel_running(self, why: str) -> None:
        for record in self._mine(dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
            self.instance.report_run_canceling(record.dagster_run, message=f"Canceling: {why}")
            self.stopped.setdefault(record.dagster_run.run_id, why)

    def check(self) -> None:
        from stageflow_assets.core.runs import MAX_RUNTIME_TAG

        for record in self._mine(dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING):
            run = record.dagster_run
            self.seen[run.run_id] = None
            if run.status == dg.DagsterRunStatus.CANCELING:
                self._interrupt(run.run_id, "Ctrl-C or SIGTERM" if self.heard_signal
                                else "terminated (its run was marked CANCELING, e.g. from the UI)")
                continue
            limit = _seconds(run.tags.get(MAX_RUNTIME_TAG))
            started = record.start_time or record.create_timestamp.timestamp()
            if limit is not None and time.time() - started > limit:
                why = f"it ran past its max runtime of {limit:g} s ({MAX_RUNTIME_TAG})"
                self.instance.report_run_canceling(run, message=f"Canceling: {why}")
                self._interrupt(run.run_id, why)

    def _interrupt(self, run_id: str, why: str) -> None:
        self.stopped.setdefault(run_id, why)
        now = time.monotonic()
        if now - self._signalled_at.get(run_id, -1e9) < 1.0:
            return  # one interrupt a second: the step it stops needs a moment to end
        self._signalled_at[run_id] = now
        self._sent += 1
        os.kill(os.getpid(), signal.SIGINT)


def _seconds(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value and value > 0 else None
