"""Runs on Celery workers (scale-out): launch, wait, cancel on Ctrl-C.

With Celery configured the CLI does not execute runs itself: it launches them through the
instance's run launcher (dagster-celery), a `stageflow worker` executes each, and the CLI
follows their status in the instance (PostgreSQL), as the UI does.
"""

from __future__ import annotations

import time
from typing import Callable

import dagster as dg

from stageflow_assets.core import scaleout
from stageflow_assets.core.runs import PartitionRun, RunOutcome, launch_partition, outcome_of_finished

POLL_S = 0.5
# the CLI's pooled connection (DagsterInstance.optimize_for_webserver, as `dagster-webserver` sets
# it up): without it each poll opens a PostgreSQL connection, and ten waiting CLIs cost the
# server more CPU than a worker's transcription
POOL = dict(statement_timeout=60_000, pool_recycle=3600, max_overflow=4)
RETRY_WAIT_S = 120.0  # how long a failed run marked to retry may take to get its retry
STOPPED_WORKER = "stopped: no heartbeat"  # in the failure the health sensor reports
AUTO_RETRY_RUN_TAG = "dagster/auto_retry_run_id"
WILL_RETRY_TAG = "dagster/will_retry"


class QueuedRuns:
    """The runs one CLI command queued, followed until they end (or their retries do)."""

    def __init__(self, instance: dg.DagsterInstance, tags: dict[str, str], progress: Callable[[str], None]):
        instance.optimize_for_webserver(**POOL)
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
        """Launch every run at once (workers take them side by side), then wait for all of them.

        A run that failed because its worker stopped is launched once more, for another worker
        (Dagster's own run retries need a code-location origin, which runs launched from outside
        a workspace do not have); the new run records the old one as its parent.
        """
        ids = [self.submit(request) for request in planned]
        outcomes = [self.wait(run_id) for run_id in ids]
        for index, (request, outcome) in enumerate(zip(planned, outcomes)):
            if not outcome.success and not outcome.canceled and STOPPED_WORKER in (outcome.error or ""):
                self.progress(f"{request.what}: {outcome.error}; launched again")
                retry = self.submit(request, {"dagster/parent_run_id": outcome.run_id,
                                              "dagster/root_run_id": outcome.run_id})
                outcomes[index] = self.wait(retry)
        return list(zip(planned, outcomes))

    def wait(self, run_id: str) -> RunOutcome:
        """Poll the run until it ends; follow Dagster's automatic retry of it if one comes."""
        failed_at = None
        while True:
            run = self.instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                retry = run.tags.get(AUTO_RETRY_RUN_TAG)
                if retry:
                    self.progress(f"run {run_id} failed; following its retry {retry}")
                    self.open.append(retry)
                    run_id, failed_at = retry, None
                    continue
                will_retry = run.status == dg.DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true"
                failed_at = failed_at or time.monotonic()
                if not will_retry or time.monotonic() - failed_at > RETRY_WAIT_S:
                    if run_id in self.open:
                        self.open.remove(run_id)
                    return outcome_of_finished(self.instance, run_id)
            time.sleep(POLL_S)

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
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            runs = [self.instance.get_run_by_id(r) for r in self.open]
            if all(run is None or run.is_finished for run in runs):
                return
            time.sleep(POLL_S)
