"""What every domain's CLI pipeline shares: runs in order through the instance, one clear error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import dagster as dg

from stageflow_assets.core.manifest import StageManifest, stage_manifest
from stageflow_assets.core.paths import StagePaths, StageSpec
from stageflow_assets.core.runs import execute_partition, settle_heap
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

    def __post_init__(self) -> None:
        # a CLI process runs one job's runs and exits: settle the loaded heap before them
        settle_heap()

    @property
    def tags(self) -> dict[str, str]:
        tags = {JOB_TAG: self.job, "stageflow/source": "cli"}
        if self.force:
            tags[FORCE_TAG] = "true"
        return tags

    def run(self, what: str, job_name: str, partitions_def: dg.PartitionsDefinition, key: Any,
            run_config: dict | None = None) -> str:
        outcome = execute_partition(self.instance, job_name, partitions_def, key, self.tags, run_config)
        self.runs.append((what, outcome.run_id))
        if not outcome.success:
            raise PipelineError(f"{what}: {outcome.error}", outcome.run_id)
        self.progress(f"{what}: ok (run {outcome.run_id})")
        return outcome.run_id
