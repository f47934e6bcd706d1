"""Running asset jobs through the Dagster instance, so CLI runs show in the UI like any other.

Only Dagster's public API: jobs are rebuilt by name with `dg.build_reconstructable_job`, runs
are executed with `dg.execute_job` (in-process executor) and re-executed with
`dg.ReexecutionOptions`. A run this process executes can be stopped like any other: Ctrl-C,
or the UI's Terminate (see `core.cancel`).
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import socket
from dataclasses import dataclass
from typing import Any

import dagster as dg

PID_TAG = "stageflow/pid"
HOST_TAG = "stageflow/host"
# which CLI process executes the run: the run watcher finds its own runs by it
SESSION_TAG = "stageflow/session"
# Dagster's own tag names (the run monitoring daemon and the UI read them)
MAX_RUNTIME_TAG = "dagster/max_runtime"
MAX_RETRIES_TAG = "dagster/max_retries"
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
ROOT_RUN_ID_TAG = "dagster/root_run_id"
# tags a re-execution does not inherit: they describe the parent run, not the new one
_NOT_INHERITED = ("dagster/failure_reason", "dagster/retry_number", "dagster/will_retry",
                  "dagster/auto_retry_run_id", "dagster/backfill", "dagster/parent_backfill_id",
                  "dagster/root_backfill_id", MAX_RETRIES_TAG, PID_TAG, SESSION_TAG)
DEFS_MODULE = "stageflow_assets.definitions"
# the event log keeps every event for the UI; the terminal gets the CLI's own one-line errors
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    error: str | None = None
    canceled: bool = False


# The domain whose definitions.py ships each job: a process that executes a run imports that
# domain's definitions only (the subtitle ones cost ~0.3 s against ~0.6 s for every domain's).
# The same job as the code location's: its assets, resources and executor are the domain's own.
JOB_DOMAINS = {
    "subtitle_source_job": "subtitles", "subtitle_language_job": "subtitles", "subtitle_mux_job": "subtitles",
    "vocabulary_deck_job": "vocabulary", "anki_sync_job": "vocabulary", "claude_batch_job": "vocabulary",
    "claude_batch_ingest_job": "vocabulary", "journey_job": "journey", "research_bundle_job": "journey",
    "daily_usage_job": "usage",
}


def job_named(name: str) -> dg.JobDefinition:
    """The job `name` from its domain's definitions (the code location's, for any other job):
    what `reconstructable_job` rebuilds in any process."""
    domain = JOB_DOMAINS.get(name)
    module = importlib.import_module(f"stageflow_assets.{domain}.definitions" if domain else DEFS_MODULE)
    job = module.defs.resolve_job_def(name)
    _freeze_loaded_code()
    return job


@functools.cache
def _freeze_loaded_code() -> None:
    """Once per process, when the first job is loaded: move what importing Dagster and the
    definitions left on the heap out of the garbage collector's sight (gc.freeze, public since
    3.7). Those objects live as long as the process; without this every full collection walks
    them again: faster-whisper collects once per decoded file (0.19 s in a warm worker, 0.02 s
    in a plain script), and Python's own collections during a run do the same."""
    gc.freeze()


def reconstructable_job(name: str):
    return dg.build_reconstructable_job(__name__, job_named.__name__, reconstructable_args=(name,))


def failure_message(result: dg.ExecutionResult) -> str | None:
    """The first step failure as one line: a Failure's description, else the error message."""
    return first_failure(result.all_events) or (None if result.success else "run failed")


def first_failure(events) -> str | None:
    from stageflow_assets.core.events import step_error

    for event in events:
        if event.is_step_failure:
            return step_error(event.step_failure_data)
    return None


def outcome_of(instance: dg.DagsterInstance, result: dg.ExecutionResult) -> RunOutcome:
    if result.success:
        return RunOutcome(result.run_id, True)
    run = instance.get_run_by_id(result.run_id)
    canceled = run is not None and run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING)
    return RunOutcome(result.run_id, False, failure_message(result), canceled)


def process_tags() -> dict[str, str]:
    """Which process executes a run: its pid (for `reexecute`) and this CLI session."""
    return {PID_TAG: f"{os.getpid()}", SESSION_TAG: _session(), HOST_TAG: socket.gethostname()}


def execute_partition(
    instance: dg.DagsterInstance,
    job_name: str,
    partitions_def: dg.PartitionsDefinition,
    partition_key: Any,
    tags: dict[str, str],
    run_config: dict | None = None,
) -> RunOutcome:
    run_tags = {**partitions_def.get_tags_for_partition_key(str(partition_key)), **tags, **process_tags()}
    result = dg.execute_job(  # creates the run and executes it here, in-process
        reconstructable_job(job_name), instance, run_config={**QUIET, **(run_config or {})}, tags=run_tags,
    )
    return outcome_of(instance, result)


def launch_partition(instance: dg.DagsterInstance, request: "PartitionRun", tags: dict[str, str]) -> str:
    """Create the run and hand it to the instance's run launcher (Celery: a task in the broker's
    queue that the next free worker takes).

    Not through Dagster's run queue: a queued run must carry a code-location origin, which only a
    workspace (the webserver, the daemon) can give, and none is public to a plain process. The
    workers' concurrency is the limit instead; runs wait in the broker, STARTING.
    """
    # Dagster's run retries cannot re-execute a run without a code-location origin: the CLI
    # launches a run again itself when its worker stopped (core/queued.py)
    from stageflow_assets.core.event_sink import report_run_event
    from stageflow_assets.core.events import CREATED_REPORTED_TAG

    run_tags = {**request.partitions_def.get_tags_for_partition_key(str(request.partition_key)), **tags,
                SESSION_TAG: _session(), MAX_RETRIES_TAG: "0", CREATED_REPORTED_TAG: "true"}
    run = instance.create_run_for_job(
        job_def=job_named(request.job_name), run_config={**QUIET, **(request.run_config or {})}, tags=run_tags,
        job_code_origin=reconstructable_job(request.job_name).get_python_origin(),
    )
    report_run_event("created", run)  # the creator's side: the worker only sees it start
    instance.launch_run(run.run_id, workspace=None)
    return run.run_id


def outcome_of_finished(instance: dg.DagsterInstance, run_id: str) -> RunOutcome:
    """The outcome of a run that has ended, from the instance (where it ran does not matter)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return RunOutcome(run_id, False, "the run is gone from the instance")
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return RunOutcome(run_id, True)
    if run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING):
        return RunOutcome(run_id, False, "canceled", canceled=True)
    failures = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    error = first_failure([r.event_log_entry.dagster_event for r in failures])
    if error is None:
        ended = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        error = ended[-1].event_log_entry.message if ended else "run failed"
    return RunOutcome(run_id, False, error)


def _session() -> str:
    from stageflow_assets.core.cancel import session_id

    return session_id()


@dataclass(frozen=True)
class PartitionRun:
    """One run to make: a partitioned job for one partition key."""

    what: str  # for the user: "subtitles [es]"
    job_name: str
    partitions_def: dg.PartitionsDefinition
    partition_key: Any
    run_config: dict | None = None


def reexecute_from_failure(instance: dg.DagsterInstance, run_id: str, extra_tags: dict[str, str] | None = None,
                           ) -> RunOutcome:
    """Re-execute a failed run's failed and unfinished steps.

    A run whose process was killed stays STARTED forever without the monitoring daemon;
    if its recorded process is gone it is marked failed first.
    """
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"no run {run_id} in this instance")
    if run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid and run.tags.get(HOST_TAG, socket.gethostname()) == socket.gethostname() and _alive(pid):
            raise RuntimeError(f"run {run_id} is still running (process {pid})")
        # this command is the retry: keep the daemon's automatic run retry from starting another
        instance.add_run_tags(run_id, {MAX_RETRIES_TAG: "0"})
        run = instance.get_run_by_id(run_id)
        instance.report_run_failed(run, message="the run's process is gone (killed)")
    # like Dagster's own re-execution: keep the parent's tags (partition, stageflow/job, force)
    # and record the lineage as tags, which the UI groups runs by
    tags = {k: v for k, v in run.tags.items() if k not in _NOT_INHERITED}
    tags.update({PARENT_RUN_ID_TAG: run.run_id, ROOT_RUN_ID_TAG: run.root_run_id or run.run_id,
                 **process_tags(), **(extra_tags or {})})
    result = dg.execute_job(
        reconstructable_job(run.job_name),
        instance,
        run_config={**run.run_config, **QUIET},
        tags=tags,
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
    )
    return outcome_of(instance, result)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); a dead run is what matters
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
