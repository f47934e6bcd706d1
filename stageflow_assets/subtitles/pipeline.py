"""A whole video through the subtitle assets, run by run, as the CLI and benchmarks drive it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dagster as dg

from stageflow_assets.core.manifest import MANIFEST_NAME, StageManifest
from stageflow_assets.core.paths import StagePaths, atomic_path
from stageflow_assets.core.runs import RunOutcome, execute_partition, settle_heap
from stageflow_assets.core.stage import FORCE_TAG, StageSpec, read_manifest
from stageflow_assets.subtitles import stages
from stageflow_assets.subtitles.jobs import JOB_TAG
from stageflow_assets.subtitles.partitions import job_language_partitions, subtitle_job_partitions
from stageflow_assets.subtitles.registry import register_video


class PipelineError(Exception):
    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass
class SubtitleResult:
    job: str
    runs: list[tuple[str, str]] = field(default_factory=list)  # (what, run id)
    detected_language: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    deliverables: list[Path] = field(default_factory=list)


def manifest_for(paths: StagePaths, spec: StageSpec, job: str, lang: str | None = None) -> StageManifest:
    manifest = read_manifest(paths.stage_dir(spec.domain, job, spec.dir_name, lang) / MANIFEST_NAME)
    if manifest is None:
        raise PipelineError(f"{spec.dir_name} for {job} has no manifest")
    return manifest


def run_subtitles(
    instance: dg.DagsterInstance,
    paths: StagePaths,
    video: Path,
    languages: list[str],
    out_dir: Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    glossary: Path | None = None,
    container: str = "mkv",
    burn_in: str | None = None,
) -> SubtitleResult:
    # a CLI process runs one video and exits: fewer full collections, and a quick exit
    settle_heap()
    job = register_video(paths, video, glossary).job
    instance.add_dynamic_partitions(subtitle_job_partitions.name, [job])
    result = SubtitleResult(job=job)
    tags = {JOB_TAG: job, "stageflow/source": "cli"}
    if force:
        tags[FORCE_TAG] = "true"

    def step(what: str, outcome: RunOutcome) -> None:
        result.runs.append((what, outcome.run_id))
        if not outcome.success:
            raise PipelineError(f"{what}: {outcome.error}", outcome.run_id)
        progress(f"{what}: ok (run {outcome.run_id})")

    progress(f"job {job}: probe, demux, transcribe")
    step("source, audio, transcript", execute_partition(instance, "subtitle_source_job", subtitle_job_partitions, job, tags))
    result.detected_language = manifest_for(paths, stages.TRANSCRIPT, job).details.get("language")
    progress(f"detected language: {result.detected_language}")
    for lang in languages:
        key = dg.MultiPartitionKey({"job": job, "lang": lang})
        step(f"subtitles [{lang}]", execute_partition(instance, "subtitle_language_job", job_language_partitions, key, tags))
        subs = manifest_for(paths, stages.SUBTITLES, job, lang)
        if subs.status == "skipped":
            result.skipped[lang] = subs.details.get("skipped_reason", "skipped")
            progress(f"skipped {lang}: {result.skipped[lang]}")
    if len(result.skipped) == len(languages):
        raise PipelineError("no requested language could be served: " + "; ".join(result.skipped.values()))
    mux_config = {"ops": {"subtitled_video": {"config": {
        "languages": languages, "container": container, "burn_in": burn_in}}}}
    step("subtitled video", execute_partition(instance, "subtitle_mux_job", subtitle_job_partitions, job, tags, mux_config))
    if out_dir is not None:
        result.deliverables = copy_deliverables(paths, job, languages, out_dir, container)
    return result


def copy_deliverables(
    paths: StagePaths, job: str, languages: list[str], out_dir: Path, container: str = "mkv"
) -> list[Path]:
    """`<job>.<lang>.srt/.vtt/.ass` and `<job>.<mkv|mp4>`, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    copies: list[tuple[str, Path]] = []
    for lang in languages:
        subs = manifest_for(paths, stages.SUBTITLES, job, lang)
        for kind in ("srt", "vtt", "ass"):
            if subs.status == "success":
                copies.append((subs.output(kind).path, out_dir / f"{job}.{lang}.{kind}"))
    video = manifest_for(paths, stages.SUBTITLED_VIDEO, job)
    copies.append((video.output("video").path, out_dir / f"{job}.{container}"))
    written = []
    for relative, target in copies:
        with atomic_path(target) as tmp:
            shutil.copyfile(paths.absolute(relative), tmp)
        written.append(target)
    return written
