"""Running asset jobs through the Dagster instance, so CLI runs show in the UI like any other."""

from __future__ import annotations

import functools
import gc
import os
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.storage.tags import (
    MAX_RETRIES_TAG,
    PARENT_RUN_ID_TAG,
    ROOT_RUN_ID_TAG,
    TAGS_TO_MAYBE_OMIT_ON_RETRY,
)

from stageflow_assets.core.settings import project_root

DEFS_MODULE = "stageflow_assets.definitions"
PID_TAG = "stageflow/pid"
# the event log keeps every event for the UI; the terminal gets the CLI's own one-line errors
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    error: str | None = None


@functools.lru_cache(maxsize=1)
def _repository() -> ReconstructableRepository:
    # one pointer per process: the definitions module is imported once either way
    return ReconstructableRepository.for_module(DEFS_MODULE, "defs", working_directory=str(project_root()))


def reconstructable_job(name: str):
    return _repository().get_reconstructable_job(name)


_heap_settled = False


def settle_heap() -> None:
    """Load the definitions, then take everything alive out of the garbage collector's sight.

    Importing Dagster and the definitions leaves ~200k long-lived objects; every full
    collection walks them all, and so does interpreter exit. On the 2-core reference machine
    that was ~0.25 s of full collections per video and ~0.5 s at exit (bench/subtitles_overhead.py).
    Frozen objects are never freed, which these never would be. The collector is (re-)enabled
    afterwards, so an entry point may disable it while it imports. Once per process: a later
    call would freeze the garbage of the runs in between.
    """
    global _heap_settled
    if _heap_settled:
        return
    _repository().get_definition()
    gc.freeze()
    gc.enable()
    _heap_settled = True


def failure_message(result: dg.ExecutionResult) -> str | None:
    """The first step failure as one line: a Failure's description, else the error message."""
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            error = data.error
            while error is not None and error.cause is not None and "DagsterExecution" in error.cls_name:
                error = error.cause
            return error.message.strip().splitlines()[0] if error else "step failed"
    return None if result.success else "run failed"


def execute_partition(
    instance: dg.DagsterInstance,
    job_name: str,
    partitions_def: dg.PartitionsDefinition,
    partition_key: Any,
    tags: dict[str, str],
    run_config: dict | None = None,
) -> RunOutcome:
    run_tags = {**partitions_def.get_tags_for_partition_key(str(partition_key)), **tags}
    run_tags[PID_TAG] = str(os.getpid())
    result = dg.execute_job(
        reconstructable_job(job_name), instance, run_config={**QUIET, **(run_config or {})},
        tags=run_tags,
    )
    return RunOutcome(result.run_id, result.success, failure_message(result))


def reexecute_from_failure(instance: dg.DagsterInstance, run_id: str) -> RunOutcome:
    """Re-execute a failed run's failed and unfinished steps.

    A run whose process was killed stays STARTED forever without the monitoring daemon;
    if its recorded process is gone it is marked failed first.
    """
    settle_heap()
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"no run {run_id} in this instance")
    if run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid and _alive(pid):
            raise RuntimeError(f"run {run_id} is still running (process {pid})")
        # this command is the retry: keep the daemon's automatic run retry from starting another
        instance.add_run_tags(run_id, {MAX_RETRIES_TAG: "0"})
        run = instance.get_run_by_id(run_id)
        instance.report_run_failed(run, message="the run's process is gone (killed)")
    # like Dagster's own re-execution: keep the parent's tags (partition, stageflow/job, force)
    # and record the lineage as tags, which the UI groups runs by
    tags = {k: v for k, v in run.tags.items() if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY | {MAX_RETRIES_TAG}}
    tags.update({PARENT_RUN_ID_TAG: run.run_id, ROOT_RUN_ID_TAG: run.root_run_id or run.run_id,
                 PID_TAG: str(os.getpid())})
    result = dg.execute_job(
        reconstructable_job(run.job_name),
        instance,
        run_config={**run.run_config, **QUIET},
        tags=tags,
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
    )
    return RunOutcome(result.run_id, result.success, failure_message(result))


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
