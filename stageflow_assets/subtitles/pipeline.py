"""A whole video through the subtitle assets, run by run, as the CLI and benchmarks drive it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dagster as dg

from stageflow_assets.core.outbox import note_cli_failure
from stageflow_assets.core.paths import StagePaths, atomic_path
from stageflow_assets.core.run_sequence import PipelineError, RunSequence, manifest_for
from stageflow_assets.core.runs import PartitionRun
from stageflow_assets.subtitles import stage_dirs
from stageflow_assets.subtitles.partitions import job_language_partitions, subtitle_job_partitions
from stageflow_assets.subtitles.registry import register_video


@dataclass
class SubtitleResult:
    job: str
    runs: list[tuple[str, str]] = field(default_factory=list)  # (what, run id)
    detected_language: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    deliverables: list[Path] = field(default_factory=list)
    outbox: Path | None = None  # the job's outbox folder, delivered by the mux run


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
    max_runtime_s: float | None = None,
) -> SubtitleResult:
    job = register_video(paths, video, glossary).job
    instance.add_dynamic_partitions(subtitle_job_partitions.name, [job])
    result = SubtitleResult(job=job)
    runs = RunSequence(instance, job, force, progress, result.runs, max_runtime_s=max_runtime_s)
    try:
        _run_all(runs, paths, job, languages, result, progress, container, burn_in)
    except PipelineError as exc:
        note_cli_failure(instance, paths, stage_dirs.DOMAIN, job, str(exc), exc.run_id)
        raise
    result.outbox = paths.dir_of(stage_dirs.OUTBOX, job)
    if out_dir is not None:
        result.deliverables = copy_deliverables(paths, job, languages, out_dir, container)
    return result


def _run_all(runs: RunSequence, paths: StagePaths, job: str, languages: list[str], result: SubtitleResult,
             progress: Callable[[str], None], container: str, burn_in: str | None) -> None:
    progress(f"job {job}: probe, demux, transcribe")
    runs.run("source, audio, transcript", "subtitle_source_job", subtitle_job_partitions, job)
    result.detected_language = manifest_for(paths, stage_dirs.TRANSCRIPT, job).details.get("language")
    progress(f"detected language: {result.detected_language}")
    progress(f"translate, write subtitles: {', '.join(languages)}")
    runs.run_independent([
        PartitionRun(f"subtitles [{lang}]", "subtitle_language_job", job_language_partitions,
                     dg.MultiPartitionKey({"job": job, "lang": lang}))
        for lang in languages
    ])
    for lang in languages:
        subs = manifest_for(paths, stage_dirs.SUBTITLES, job, lang)
        if subs.status == "skipped":
            result.skipped[lang] = subs.details.get("skipped_reason", "skipped")
            progress(f"skipped {lang}: {result.skipped[lang]}")
    if len(result.skipped) == len(languages):
        raise PipelineError("no requested language could be served: " + "; ".join(result.skipped.values()))
    mux_config = {"ops": {"subtitled_video": {"config": {
        "languages": languages, "container": container, "burn_in": burn_in}}}}
    runs.run("subtitled video", "subtitle_mux_job", subtitle_job_partitions, job, mux_config)


def copy_deliverables(
    paths: StagePaths, job: str, languages: list[str], out_dir: Path, container: str = "mkv"
) -> list[Path]:
    """`<job>.<lang>.srt/.vtt/.ass` and `<job>.<mkv|mp4>`, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    copies: list[tuple[str, Path]] = []
    for lang in languages:
        subs = manifest_for(paths, stage_dirs.SUBTITLES, job, lang)
        for kind in ("srt", "vtt", "ass"):
            if subs.status == "success":
                copies.append((subs.output(kind).path, out_dir / f"{job}.{lang}.{kind}"))
    video = manifest_for(paths, stage_dirs.SUBTITLED_VIDEO, job)
    copies.append((video.output("video").path, out_dir / f"{job}.{container}"))
    written = []
    for relative, target in copies:
        with atomic_path(target) as tmp:
            shutil.copyfile(paths.absolute(relative), tmp)
        written.append(target)
    return written
