"""What every domain's CLI pipeline shares: runs in order through the instance, one clear error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import dagster as dg

from stageflow_assets.core.manifest import StageManifest, stage_manifest
from stageflow_assets.core.paths import StagePaths, StageSpec
from stageflow_assets.core.runs import ForkPoint, PartitionRun, RunOutcome, execute_partition, settle_heap
from stageflow_assets.core.settings import parallel_runs
from stageflow_assets.core.stage import FORCE_TAG, JOB_TAG


class PipelineError(Exception):
    """A run failed (or produced nothing usable): one line for the user, and the run to inspect."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


def manifest_for(paths: StagePaths, spec: StageSpec, job: str, lang: str | None = None) -> StageManifest:
    manifest = stage_manifest(paths, spec, job, lang)
    if manifest is None:
        raise PipelineError(f"{spec.dir_name} for {job} has no manifest")
    return manifest


@dataclass
class RunSequence:
    """Runs a job's Dagster runs one after the other, tagged alike, stopping at the first failure."""

    instance: dg.DagsterInstance
    job: str
    force: bool = False
    progress: Callable[[str], None] = lambda _: None
    runs: list[tuple[str, str]] = field(default_factory=list)  # (what, run id)
    side_by_side: int = 1  # how many runs will go side by side at most (a video's languages)

    def __post_init__(self) -> None:
        # a CLI process runs one job's runs and exits: settle the loaded heap before them
        settle_heap()
        self._fork_point: ForkPoint | None = None
        self._workers = min(self.side_by_side, parallel_runs())
        if self._workers > 1 and not self.instance.is_ephemeral:
            # now, before any run: see ForkPoint (an in-memory instance cannot be shared by forks)
            self._fork_point = ForkPoint(self.instance)

    def close(self) -> None:
        if self._fork_point is not None:
            self._fork_point.close()
            self._fork_point = None

    def __enter__(self) -> "RunSequence":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def tags(self) -> dict[str, str]:
        tags = {JOB_TAG: self.job, "stageflow/source": "cli"}
        if self.force:
            tags[FORCE_TAG] = "true"
        return tags

    def run(self, what: str, job_name: str, partitions_def: dg.PartitionsDefinition, key: Any,
            run_config: dict | None = None) -> str:
        outcome = execute_partition(self.instance, job_name, partitions_def, key, self.tags, run_config)
        self._record(what, outcome)
        return outcome.run_id

    def run_side_by_side(self, planned: list[PartitionRun]) -> list[str]:
        """Runs that do not depend on each other (a video's languages), up to `parallel_runs()` at once.

        Each in a process forked from the fork point made at the start (core.runs.ForkPoint);
        all of them finish before the first failure, in `planned` order, is raised. One after
        the other in this process when only one may run at a time or the instance is in memory.
        """
        if self._fork_point is None or len(planned) < 2:
            return [self.run(p.what, p.job_name, p.partitions_def, p.partition_key, p.run_config) for p in planned]
        try:
            outcomes = self._fork_point.execute_side_by_side(planned, self.tags, self._workers)
        except RuntimeError as exc:
            raise PipelineError(f"{', '.join(p.what for p in planned)}: {exc}") from exc
        failure = None
        for request, outcome in zip(planned, outcomes):
            try:
                self._record(request.what, outcome)
            except PipelineError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return [outcome.run_id for outcome in outcomes]

    def _record(self, what: str, outcome: RunOutcome) -> None:
        if outcome.run_id:
            self.runs.append((what, outcome.run_id))
        if not outcome.success:
            raise PipelineError(f"{what}: {outcome.error}", outcome.run_id or None)
        self.progress(f"{what}: ok (run {outcome.run_id})")
