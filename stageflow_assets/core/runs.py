"""Running asset jobs through the Dagster instance, so CLI runs show in the UI like any other."""

from __future__ import annotations

import functools
import gc
import os
import sys
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


@dataclass(frozen=True)
class PartitionRun:
    """One run to make: a partitioned job for one partition key."""

    what: str  # for the user: "subtitles [es]"
    job_name: str
    partitions_def: dg.PartitionsDefinition
    partition_key: Any
    run_config: dict | None = None


def execute_side_by_side(
    instance: dg.DagsterInstance, planned: list[PartitionRun], tags: dict[str, str], workers: int,
) -> list[RunOutcome]:
    """Independent runs at once, each in a process forked from this one; outcomes in `planned` order.

    A fork starts with Dagster, the definitions and the instance already loaded (nothing to
    import again, unlike a spawned process), and each run stays an ordinary run of the
    instance: its own run id, events, `stageflow/pid` tag and re-execution. A forked process
    opens its own database connections (core/dagster_storage.py; PostgreSQL storages connect
    per use), is killed if this process dies, as the tools of a killed run are, and leaves
    through `os._exit`, so nothing of this process's is torn down twice.

    Call it from a process that has not run Whisper: CTranslate2's OpenMP threads (libgomp)
    do not survive a fork, and a forked run that used the model would hang. `ForkPoint`
    keeps such a process.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("fork")
    close_before_fork()
    outcomes: list[RunOutcome | None] = [None] * len(planned)
    queue = list(enumerate(planned))
    running: dict[Any, tuple[int, Any]] = {}
    try:
        while queue or running:
            while queue and len(running) < max(1, workers):
                index, request = queue.pop(0)
                receive, send = context.Pipe(duplex=False)
                child = context.Process(
                    target=_run_in_child, args=(send, instance, request, tags), name=f"run {request.what}",
                )
                child.start()
                send.close()
                running[receive] = (index, child)
            for receive in wait(list(running)):
                index, child = running.pop(receive)
                try:
                    outcome = receive.recv()
                except EOFError:
                    outcome = None
                receive.close()
                child.join()
                outcomes[index] = outcome or RunOutcome(
                    "", False, f"the process running it ended without a result (exit status {child.exitcode})",
                )
    finally:
        for _, child in running.values():  # interrupted: the runs go with this process
            child.kill()
            child.join()
    return [outcome for outcome in outcomes if outcome is not None]


def close_before_fork() -> None:
    """Close this process's pooled database connections before it forks.

    SQLite keeps per-process lock state for every open database file; a forked child that
    opened the same file again would share a copy of that state for locks it does not hold
    (sqlite.org/howtocorrupt.html, 2.6). With nothing open at the fork, parent and children
    each start their own. The parent reopens on its next query (pooled: once).
    """
    from stageflow_assets.core.dagster_storage import close_connections

    close_connections()


def _run_in_child(send, instance: dg.DagsterInstance, request: PartitionRun, tags: dict[str, str]) -> None:
    from stageflow_assets.providers.process import die_with_parent

    die_with_parent()
    try:
        outcome = execute_partition(
            instance, request.job_name, request.partitions_def, request.partition_key, tags, request.run_config,
        )
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this run's failure
        outcome = RunOutcome("", False, f"{type(exc).__name__}: {exc}")
    send.send(outcome)
    send.close()
    from stageflow_assets.core.dagster_storage import close_connections

    close_connections()


class ForkPoint:
    """A copy of this process, forked now, that forks side-by-side runs when asked later.

    The CLI makes one after loading the definitions and before its first run: at that point
    the process has Dagster loaded and no thread pools. By the time a video's language runs
    are due, the CLI process has transcribed, and Whisper's OpenMP runtime cannot be used
    in a process forked from it (a language served by Whisper's translate task would hang);
    a run forked from the fork point loads the model itself if it needs it. The copy waits
    on a pipe, dies with this process, and exits when this process closes it.
    """

    def __init__(self, instance: dg.DagsterInstance) -> None:
        import multiprocessing

        self._conn, theirs = multiprocessing.get_context("fork").Pipe()
        close_before_fork()
        for stream in (sys.stdout, sys.stderr):  # nothing buffered gets written twice
            stream.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the copy
            code = 0
            try:
                self._conn.close()
                from stageflow_assets.providers.process import die_with_parent

                die_with_parent()
                _serve(theirs, instance)
            except BaseException:  # noqa: BLE001 - interrupted or the pipe broke: the parent sees EOF
                code = 1
            finally:
                os._exit(code)
        theirs.close()

    def execute_side_by_side(self, planned: list[PartitionRun], tags: dict[str, str], workers: int) -> list[RunOutcome]:
        try:
            self._conn.send((planned, tags, workers))
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            raise RuntimeError(f"the process that forks runs is gone ({exc or type(exc).__name__})") from exc

    def close(self) -> None:
        self._conn.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _serve(conn, instance: dg.DagsterInstance) -> None:
    while True:
        try:
            planned, tags, workers = conn.recv()
        except EOFError:
            return
        conn.send(execute_side_by_side(instance, planned, tags, workers))


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
