"""What every domain's CLI pipeline shares: runs in order through the instance, one clear error."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import dagster as dg

from stageflow_assets.core.manifest import StageManifest, stage_manifest
from stageflow_assets.core.paths import StagePaths, StageSpec
from stageflow_assets.core import progress as display
from stageflow_assets.core import scaleout
from stageflow_assets.core.cancel import RunWatcher
from stageflow_assets.core.instance import database_unreachable
from stageflow_assets.core.queued import POLL_S, LaunchedRuns, QueuedRuns
from stageflow_assets.core.runs import MAX_RUNTIME_TAG, PartitionRun, RunOutcome, execute_partition
from stageflow_assets.core.stage import FORCE_TAG, JOB_TAG, SOURCE_TAG


class PipelineError(Exception):
    """A run failed (or produced nothing usable): one line for the user, and the run to inspect."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class Interrupted(Exception):
    """Work was stopped (Ctrl-C, Terminate, max runtime): its run ended CANCELED."""

    def __init__(self, what: str, run_id: str | None, why: str | None) -> None:
        super().__init__(f"{what} stopped: {why or 'interrupted'}; nothing was delivered")
        self.run_id = run_id
        self.by_signal = why == BY_SIGNAL  # the user's Ctrl-C (or SIGTERM), not one run's cancel


BY_SIGNAL = "Ctrl-C or SIGTERM"
CANCELED_BY_SIGNAL = f"{BY_SIGNAL} on the command that queued it"  # why queued runs were canceled


def manifest_for(paths: StagePaths, spec: StageSpec, job: str, lang: str | None = None) -> StageManifest:
    manifest = stage_manifest(paths, spec, job, lang)
    if manifest is None:
        raise PipelineError(f"{spec.dir_name} for {job} has no manifest")
    return manifest


@dataclass
class RunSequence:
    """Runs a job's Dagster runs one after the other in this process, tagged alike.

    While a run goes, a `RunWatcher` interrupts this process when the run is terminated (the
    UI's Terminate) or passes `max_runtime_s`; Ctrl-C stops it directly. Either way the run
    ends CANCELED and `Interrupted` is raised.
    """

    instance: dg.DagsterInstance
    job: str
    force: bool = False
    progress: Callable[[str], None] = lambda _: None
    runs: list[tuple[str, str]] = field(default_factory=list)  # (what, run id)
    max_runtime_s: float | None = None

    @property
    def tags(self) -> dict[str, str]:
        tags = {JOB_TAG: self.job, SOURCE_TAG: "cli"}
        if self.force:
            tags[FORCE_TAG] = "true"
        if self.max_runtime_s:
            tags[MAX_RUNTIME_TAG] = f"{self.max_runtime_s:g}"
        return tags

    def __post_init__(self) -> None:
        # scale-out: runs go through the instance's queue to Celery workers (core/queued.py)
        self._queue = QueuedRuns(self.instance, self.tags, self.progress) if scaleout.enabled() else None

    def run(self, what: str, job_name: str, partitions_def: dg.PartitionsDefinition, key: Any,
            run_config: dict | None = None) -> str:
        if self._queue is not None:
            return self._run_queued([PartitionRun(what, job_name, partitions_def, key, run_config)])[0]
        watcher = RunWatcher(self.instance)
        display.run_started(what)
        try:
            with watcher:
                outcome = execute_partition(self.instance, job_name, partitions_def, key, self.tags, run_config)
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError) as exc:
            run_id = self._stopped_run(watcher)
            raise Interrupted(what, run_id, self._why(watcher, run_id)) from exc
        except Exception as exc:
            lost = database_unreachable(exc)
            if lost is None:
                raise
            run_id = next(reversed(watcher.seen), None)  # what the watcher saw before the database went
            hint = f"; once it is back: stageflow reexecute {run_id}" if run_id else ""
            raise PipelineError(f"{what}: {lost}{hint}", run_id) from exc
        finally:
            display.run_ended(what)
        # a Ctrl-C that lands between two steps fails the run (Dagster raises its interrupt there,
        # outside any step) instead of canceling it: still the user's interrupt, not a failure
        if outcome.canceled or (not outcome.success and watcher.heard_signal):
            if outcome.run_id:
                self.runs.append((what, outcome.run_id))
            raise Interrupted(what, outcome.run_id, self._why(watcher, outcome.run_id))
        self.progress(display.run_line(what, outcome.success, outcome.run_id))
        self._record(what, outcome)
        return outcome.run_id

    def run_independent(self, planned: list[PartitionRun]) -> list[str]:
        """Runs that do not depend on each other (a video's languages), one after the other.

        All of them run; then the first failure, in `planned` order, is raised.
        """
        if self._queue is not None:
            return self._run_queued(planned)
        run_ids, failure = [], None
        for request in planned:
            try:
                run_ids.append(self.run(request.what, request.job_name, request.partitions_def,
                                        request.partition_key, request.run_config))
            except PipelineError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return run_ids

    def _run_queued(self, planned: list[PartitionRun]) -> list[str]:
        """Queue the runs, wait for them on the workers; Ctrl-C cancels them. All of them end
        before the first failure, in `planned` order, is raised."""
        try:
            finished = self._queue.run_all(planned)
        except KeyboardInterrupt as exc:
            self._queue.cancel_open(CANCELED_BY_SIGNAL)
            raise Interrupted(", ".join(p.what for p in planned), next(iter(self._queue.open), None),
                              BY_SIGNAL) from exc
        return self._record_all(finished)

    def start_queued(self, planned: list[PartitionRun]) -> LaunchedRuns:
        """Scale-out: launch the runs and return at once (`poll_queued`, then `finish_queued`)."""
        return self._queue.launch(planned)

    def poll_queued(self, batch: LaunchedRuns) -> bool:
        return self._queue.poll(batch)

    def finish_queued(self, batch: LaunchedRuns) -> list[str]:
        """The ended runs recorded: their run ids, or the first failure raised (`planned` order)."""
        return self._record_all(batch.finished())

    def cancel_queued(self, why: str) -> None:
        """Cancel every run still queued or running, without waiting for them to end."""
        self._queue.cancel_open(why, grace_s=0)

    @property
    def open_runs(self) -> list[str]:
        """Scale-out: the runs launched and not yet seen to end."""
        return list(self._queue.open) if self._queue is not None else []

    def wait_queued(self, deadline: float) -> None:
        self._queue.wait_ended(deadline)

    def _record_all(self, finished: list[tuple[PartitionRun, RunOutcome]]) -> list[str]:
        failure = None
        for request, outcome in finished:
            if outcome.canceled:
                self.runs.append((request.what, outcome.run_id))
                raise Interrupted(request.what, outcome.run_id, "its run was canceled")
            try:
                self._record(request.what, outcome)
            except PipelineError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return [outcome.run_id for _, outcome in finished]

    @staticmethod
    def _why(watcher: RunWatcher, run_id: str | None) -> str:
        if watcher.heard_signal:  # whoever marked the run first, the user's Ctrl-C is the reason
            return BY_SIGNAL
        return watcher.stopped.get(run_id or "", "its run was canceled")

    def _stopped_run(self, watcher: RunWatcher) -> str | None:
        if watcher.stopped:
            return next(iter(watcher.stopped))
        from stageflow_assets.core.cancel import session_id
        from stageflow_assets.core.runs import SESSION_TAG

        records = self.instance.get_run_records(filters=dg.RunsFilter(tags={SESSION_TAG: session_id()}), limit=1)
        return records[0].dagster_run.run_id if records else None

    def _record(self, what: str, outcome: RunOutcome) -> None:
        if outcome.run_id:
            self.runs.append((what, outcome.run_id))
        if not outcome.success:
            raise PipelineError(f"{what}: {outcome.error}", outcome.run_id or None)


def run_phases_side_by_side(
    pipelines: list[tuple[RunSequence, Iterator[list[PartitionRun]]]],
    ended: Callable[[int, Exception | None], None],
    grace_s: float = 30.0,
) -> None:
    """Scale-out: several jobs' runs on the workers at once. Each job is a `RunSequence` and its
    phases (lists of independent runs; the next list once these have all succeeded); a job goes
    on to its next phase as soon as its own runs have ended, whatever the others do.
    `ended(index, error)` is called as each job ends (error None: every phase succeeded); a
    failed job does not stop the others. Ctrl-C cancels every run still going and raises
    `Interrupted`, once they have ended (or `grace_s` has passed)."""
    going: dict[int, LaunchedRuns] = {}

    def advance(index: int) -> None:
        runs, phases = pipelines[index]
        try:
            planned = next(phases)
        except StopIteration:
            ended(index, None)
            return
        except PipelineError as exc:
            ended(index, exc)
            return
        going[index] = runs.start_queued(planned)

    try:
        for index in range(len(pipelines)):
            advance(index)
        while going:
            time.sleep(POLL_S)
            for index, batch in list(going.items()):
                runs = pipelines[index][0]
                if not runs.poll_queued(batch):
                    continue
                del going[index]
                try:
                    runs.finish_queued(batch)
                except (PipelineError, Interrupted) as exc:
                    ended(index, exc)
                    continue
                advance(index)
    except KeyboardInterrupt as exc:
        open_runs = [pipelines[index][0] for index in going]
        for runs in open_runs:
            runs.cancel_queued(CANCELED_BY_SIGNAL)
        deadline = time.monotonic() + grace_s
        for runs in open_runs:
            runs.wait_queued(deadline)
        first = next((run_id for runs in open_runs for run_id in runs.open_runs), None)
        raise Interrupted(f"{len(open_runs)} job(s)", first, BY_SIGNAL) from exc
