"""A journey through its assets as the CLI drives it: register, one run, then media and record.

A journey blocked by a safety check is not a failed run to the user: its run ends FAILURE in
Dagster (a blocking check failed, the rest did not run), and `JourneyResult.blocked` says at
which stage and what matched. A stage that failed on its input (no backend for the language
pair, a perspective without an LLM) is a `StageError` with that stage's one-line message.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.manifest import FAILED_MANIFEST_NAME, MANIFEST_NAME, read_manifest
from stageflow_assets.core.paths import StagePaths, atomic_path
from stageflow_assets.core.run_sequence import PipelineError, RunSequence
from stageflow_assets.journey import stage_dirs
from stageflow_assets.journey.offline_media import KINDS
from stageflow_assets.journey.partitions import journey_partitions
from stageflow_assets.journey.record_files import write_journey_record
from stageflow_assets.journey.registry import new_journey_key, register_journey
from stageflow_assets.records.tracker import ITEMS_FILE, read_items

BLOCKING_STAGES = ((1, stage_dirs.PROMPT), (3, stage_dirs.OUTPUT_CLEARANCE))


@dataclass(frozen=True)
class Blocked:
    stage: int
    what_matched: str


@dataclass
class JourneyResult:
    job: str
    runs: list[tuple[str, str]] = field(default_factory=list)  # (what, run id)
    media: list[Path] = field(default_factory=list)
    blocked: Blocked | None = None
    record: Path | None = None
    record_error: str | None = None


def run_journey(
    instance: dg.DagsterInstance, paths: StagePaths, options: dict[str, Any], out_dir: Path | None = None,
    *, progress: Callable[[str], None] = lambda _: None,
    started: Callable[[str], None] = lambda _: None, max_runtime_s: float | None = None,
) -> JourneyResult:
    """Register a new journey (`started(key)` as soon as it has its key), run it, copy its media.

    Every journey is a new partition, so nothing is reused from an earlier one (no `force`)."""
    job = register_journey(paths, new_journey_key(), **options)
    instance.add_dynamic_partitions(journey_partitions.name, [job.job])
    started(job.job)
    result = JourneyResult(job=job.job)
    runs = RunSequence(instance, job.job, False, progress, result.runs, max_runtime_s=max_runtime_s)
    progress(f"journey {job.job}: {job.interception}, {len(job.outputs)} output(s), safety {job.safety}")
    try:
        runs.run("journey", "journey_job", journey_partitions, job.job)
    except PipelineError as exc:
        result.blocked = blocked_at(paths, job.job, exc.run_id)
        if result.blocked is None:
            bad_input = stage_input_error(paths, job.job, exc.run_id)
            if bad_input is None:
                raise
            raise bad_input from exc
    finally:
        _write_record(instance, paths, result, progress)
    if out_dir is not None and result.blocked is None:
        result.media = copy_media(paths, job.job, out_dir)
    return result


def blocked_at(paths: StagePaths, key: str, run_id: str | None) -> Blocked | None:
    """The stage whose blocking check stopped run `run_id`, if one did."""
    for number, spec in BLOCKING_STAGES:
        manifest = read_manifest(paths.stage_dir(stage_dirs.DOMAIN, key, spec.dir_name) / MANIFEST_NAME)
        if manifest is not None and manifest.details.get("blocked") and manifest.run_id == run_id:
            return Blocked(number, str(manifest.details.get("what_matched") or "blocked"))
    return None


def stage_input_error(paths: StagePaths, key: str, run_id: str | None) -> BadInputError | None:
    """The failed stage's own error when it failed on its input (retrying cannot help)."""
    for number, spec in enumerate(stage_dirs.ALL, start=1):
        directory = paths.stage_dir(stage_dirs.DOMAIN, key, spec.dir_name)
        failed = read_manifest(directory / FAILED_MANIFEST_NAME)
        if failed is None or failed.run_id != run_id:
            continue
        for error in failed.errors:
            if error.type == BadInputError.__name__:
                return BadInputError(f"stage {number}: {error.message}{_checked_first(directory)}",
                                     stage=spec.dir_name, run_id=run_id)
    return None


def _checked_first(directory: Path) -> str:
    """What the failed step had checked before it failed (stage 1 checks before it translates)."""
    try:
        checks = [i for i in read_items(directory / ITEMS_FILE) if i.kind == "safety_check"]
    except ValueError:  # an unreadable items file: the error stands on its own
        return ""
    return f" (the prompt passed the {checks[0].parameters.get('check', 'safety')} check)" if checks else ""


def copy_media(paths: StagePaths, key: str, out_dir: Path) -> list[Path]:
    """`<journey>.<n>.<kind>.<format>` at the top of `out_dir`, each written atomically."""
    manifest = read_manifest(paths.stage_dir(stage_dirs.DOMAIN, key, stage_dirs.MEDIA.dir_name) / MANIFEST_NAME)
    if manifest is None:
        raise PipelineError(f"{stage_dirs.MEDIA.dir_name} for {key} has no manifest")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for record in manifest.outputs:
        if record.kind not in KINDS:
            continue
        target = out_dir / f"{key}.{Path(record.path).name}"
        with atomic_path(target) as tmp:
            shutil.copyfile(paths.absolute(record.path), tmp)
        written.append(target)
    return written


def _write_record(instance: dg.DagsterInstance, paths: StagePaths, result: JourneyResult,
                  progress: Callable[[str], None]) -> None:
    """The record whatever happened (done, blocked, failed, interrupted); never in the way."""
    try:
        result.record = write_journey_record(instance, paths, result.job)
    except Exception as exc:  # noqa: BLE001 - the journey's outcome stands without its record
        result.record_error = f"{type(exc).__name__}: {exc}"
        progress(f"record not written: {result.record_error}")
