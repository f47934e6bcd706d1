"""Runs on Celery workers (scale-out): launch, wait, cancel on Ctrl-C.

With Celery configured the CLI does not execute runs itself: it launches them through the
instance's run launcher (dagster-celery), a `stageflow worker` executes each, and the CLI
follows their status in the instance (PostgreSQL), as the UI does.
"""

from __future__ import annotations

import time
from typing import Callable

import dagster as dg

from stageflow_assets.core import progress as display
from stageflow_assets.core import scaleout
from stageflow_assets.core.instance import POOLED_CONNECTIONS
from stageflow_assets.core.runs import PartitionRun, RunOutcome, launch_partition, outcome_of_finished

POLL_S = 0.5
RETRY_WAIT_S = 120.0  # how long a failed run marked to retry may take to get its retry
STOPPED_WORKER = "stopped: no heartbeat"  # in the failure the health sensor reports
AUTO_RETRY_RUN_TAG = "dagster/auto_retry_run_id"
WILL_RETRY_TAG = "dagster/will_retry"
PARTITION_TAG = "dagster/partition"
STEP_POLL_S = 2.0  # a running run's steps are read this often for the display (one query)
STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


class QueuedRuns:
    """The runs one CLI command queued, followed until they end (or their retries do)."""

    def __init__(self, instance: dg.DagsterInstance, tags: dict[str, str], progress: Callable[[str], None]):
        # without it each poll opens a PostgreSQL connection: ten waiting CLIs cost the server
        # more CPU than a worker's transcription
        instance.optimize_for_webserver(**POOLED_CONNECTIONS)
        self.instance = instance
        self.tags = tags
        self.progress = progress
        self.open: list[str] = []  # queued or running, for Ctrl-C

    def submit(self, request: PartitionRun, extra_tags: dict[str, str] | None = None) -> str:
        from stageflow_assets.providers.asr_whisperx import asr_device_from_env

        queue = scaleout.queue_for(request.job_name, asr_device_from_env())
        tags = {**self.tags, scaleout.QUEUE_TAG: queue, **(extra_tags or {})}
        run_id = launch_partition(self.instance, request, tags)
        self.open.append(run_id)
        self.progress(f"{request.what}: launched onto queue `{queue}` (run {run_id})")
        return run_id

    def run_all(self, planned: list[PartitionRun]) -> list[tuple[PartitionRun, RunOutcome]]:
        """Launch every run at once (workers take them side by side), then follow all of them
        together: each is reported as it ends, whichever ends first.

        A run that failed because its worker stopped is launched once more, for another worker
        (Dagster's own run retries need a code-location origin, which runs launched from outside
        a workspace do not have); the new run records the old one as its parent.
        """
        batch = self.launch(planned)
        while not self.poll(batch):
            time.sleep(POLL_S)
        return batch.finished()

    def launch(self, planned: list[PartitionRun]) -> "LaunchedRuns":
        """Launch the runs and return at once; `poll` follows them."""
        return LaunchedRuns(planned, [Followed(self, request, self.submit(request)) for request in planned])

    def poll(self, batch: "LaunchedRuns") -> bool:
        """One look at the runs still going (one query); True once every one has ended."""
        followed = batch.followed
        outcomes = batch.outcomes
        runs = {run.run_id: run for run in self.instance.get_runs(filters=dg.RunsFilter(
            run_ids=[f.run_id for i, f in enumerate(followed) if i not in outcomes]))}
        for index, run in enumerate(followed):
            if index in outcomes:
                continue
            outcome = run.poll(runs.get(run.run_id))
            if outcome is None or self._launched_again(run, outcome):
                continue
            outcomes[index] = outcome
            if not outcome.canceled:
                self.progress(display.run_line(run.request.what, outcome.success, outcome.run_id))
        return len(outcomes) == len(followed)

    def _launched_again(self, run: "Followed", outcome: RunOutcome) -> bool:
        if run.relaunched or outcome.success or outcome.canceled or STOPPED_WORKER not in (outcome.error or ""):
            return False
        self.progress(f"{run.request.what}: {outcome.error}; launched again")
        retry = self.submit(run.request, {"dagster/parent_run_id": outcome.run_id,
                                          "dagster/root_run_id": outcome.run_id})
        run.follow(retry)
        run.relaunched = True
        return True

    def cancel_open(self, why: str, grace_s: float = 30.0) -> None:
        """Cancel every run still queued or running (the worker's process is interrupted) and
        wait a little for them to end."""
        from stageflow_assets.core.event_sink import report_run_event

        for run_id in list(self.open):
            run = self.instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                continue
            waiting = run.status == dg.DagsterRunStatus.STARTING  # still in the broker's queue
            if run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
                self.instance.report_run_canceling(run, message=f"Canceling: {why}")
            try:
                self.instance.run_coordinator.cancel_run(run_id)  # revokes its Celery task
            except Exception:  # noqa: BLE001 - the run may have ended meanwhile
                pass
            if waiting:
                # no run process will ever say so: the side that cancels it does
                self.instance.report_run_canceled(run, message=f"Canceled before a worker took it: {why}")
                report_run_event("cancelled", run)
        self.wait_ended(time.monotonic() + grace_s)

    def wait_ended(self, deadline: float) -> None:
        """Until every run still open has ended, or `deadline` (time.monotonic)."""
        while time.monotonic() < deadline:
            runs = [self.instance.get_run_by_id(r) for r in self.open]
            if all(run is None or run.is_finished for run in runs):
                return
            time.sleep(POLL_S)


class LaunchedRuns:
    """Runs launched together, and the outcome of each that has ended."""

    def __init__(self, planned: list[PartitionRun], followed: list["Followed"]) -> None:
        self.planned = planned
        self.followed = followed
        self.outcomes: dict[int, RunOutcome] = {}

    def finished(self) -> list[tuple[PartitionRun, RunOutcome]]:
        return [(request, self.outcomes[index]) for index, request in enumerate(self.planned)]


class Followed:
    """One launched run followed in the instance, as the UI follows it: when a worker starts it,
    its steps (read every `STEP_POLL_S`, one query), its end, and the automatic retry that
    replaces it if one comes. What it sees goes to the CLI's display (`core.progress`)."""

    def __init__(self, queued: QueuedRuns, request: PartitionRun, run_id: str) -> None:
        self.queued = queued
        self.request = request
        self.relaunched = False
        self.follow(run_id)

    def follow(self, run_id: str) -> None:
        self.run_id = run_id
        self.started = False
        self.failed_at: float | None = None
        self.cursor: str | None = None
        self.steps_read_at = float("-inf")
        self.step_started: dict[str, float] = {}  # step key -> its STEP_START's timestamp

    def poll(self, run: dg.DagsterRun | None) -> RunOutcome | None:
        """Look at the run as it is now; its outcome once it (or its retry) has ended."""
        if run is None:
            return None
        if not self.started and (run.status == dg.DagsterRunStatus.STARTED or run.is_finished):
            self.started = True
            display.run_started(self.request.what)
        now = time.monotonic()
        if self.started and (run.is_finished or now - self.steps_read_at >= STEP_POLL_S):
            self.steps_read_at = now
            self.read_steps(run)
        if not run.is_finished:
            return None
        retry = run.tags.get(AUTO_RETRY_RUN_TAG)
        if retry:
            self.queued.progress(f"run {self.run_id} failed; following its retry {retry}")
            self.queued.open.append(retry)
            self.follow(retry)
            return None
        will_retry = run.status == dg.DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true"
        self.failed_at = self.failed_at or now
        if will_retry and now - self.failed_at <= RETRY_WAIT_S:
            return None
        if self.run_id in self.queued.open:
            self.queued.open.remove(self.run_id)
        display.run_ended(self.request.what)
        return outcome_of_finished(self.queued.instance, self.run_id)

    def read_steps(self, run: dg.DagsterRun) -> None:
        """The run's steps that started or ended since the last look, to the display."""
        if display.current() is display.NOTHING:
            return  # nobody shows them: not even the query
        partition = run.tags.get(PARTITION_TAG, "")
        while True:
            page = self.queued.instance.get_records_for_run(self.run_id, cursor=self.cursor, of_type=STEP_EVENTS,
                                                            limit=100)
            for record in page.records:
                entry = record.event_log_entry
                event = entry.dagster_event
                if event is None or not event.step_key:
                    continue
                if event.event_type == dg.DagsterEventType.STEP_START:
                    self.step_started[event.step_key] = entry.timestamp
                    display.stage_started(event.step_key, partition)
                else:
                    took = entry.timestamp - self.step_started.pop(event.step_key, entry.timestamp)
                    ok = event.event_type == dg.DagsterEventType.STEP_SUCCESS
                    display.stage_done(event.step_key, partition, "success" if ok else "failed", took)
            self.cursor = page.cursor
            if not page.has_more:
                return
