"""A whole video through the subtitle assets, run by run, as the CLI and benchmarks drive it."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.outbox import note_cli_failure
from stageflow_assets.core.paths import StagePaths, atomic_path
from stageflow_assets.core.run_sequence import (
    Interrupted, PipelineError, RunSequence, manifest_for, run_phases_side_by_side,
)
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
    """One video through its runs, a step at a time (on Celery, each step's runs on the workers)."""
    job = VideoJob(instance, paths, video, languages, out_dir, force, progress, glossary, container, burn_in,
                   max_runtime_s)
    with job.noting_failures():
        for planned in job.phases():
            job.runs.run_independent(planned)
    return job.finish()


def run_subtitles_side_by_side(
    instance: dg.DagsterInstance,
    paths: StagePaths,
    videos: list[Path],
    progress: Callable[[str], None] = lambda _: None,
    delivered: Callable[[Path, "SubtitleResult | Exception"], None] = lambda *_: None,
    **options: Any,
) -> None:
    """Scale-out: every video's runs on the workers at once, each video going on to its next
    runs as soon as its own have ended. `delivered(video, result or error)` as each ends; a
    failed video does not stop the others. Ctrl-C cancels every run still going. `options`:
    `run_subtitles`' keyword arguments."""
    jobs = [VideoJob(instance, paths, video, progress=progress, label=f"{video.name}: ", **options)
            for video in videos]
    first: dict[str, Path] = {}
    for job in jobs:
        seen = first.setdefault(job.job, job.video)
        if seen is not job.video:  # the same partitions' runs side by side would collide
            raise BadInputError(f"{seen} and {job.video} are the same video (job {job.job}): give it once",
                                job=job.job)
    run_phases_side_by_side(
        [(job.runs, job.phases()) for job in jobs],
        lambda index, error: delivered(jobs[index].video, jobs[index].ended(error)),
    )


class VideoJob:
    """One video's way through the subtitle runs: its job partition, its runs and its result."""

    def __init__(self, instance: dg.DagsterInstance, paths: StagePaths, video: Path, languages: list[str],
                 out_dir: Path | None = None, force: bool = False, progress: Callable[[str], None] = lambda _: None,
                 glossary: Path | None = None, container: str = "mkv", burn_in: str | None = None,
                 max_runtime_s: float | None = None, label: str = "") -> None:
        self.instance, self.paths, self.video = instance, paths, video
        self.languages, self.out_dir, self.container, self.burn_in = languages, out_dir, container, burn_in
        self.label = label  # before each run's name and each line of its own (several videos at once)
        self.progress = (lambda line: progress(f"{label}{line}")) if label else progress
        self.job = register_video(paths, video, glossary).job
        instance.add_dynamic_partitions(subtitle_job_partitions.name, [self.job])
        self.result = SubtitleResult(job=self.job)
        self.runs = RunSequence(instance, self.job, force, progress, self.result.runs, max_runtime_s=max_runtime_s)

    def phases(self) -> Iterator[list[PartitionRun]]:
        """The runs to make, a step at a time: each list's runs are independent, and the next list
        comes once they have all succeeded (a stage that could serve nothing raises here)."""
        job, paths, progress = self.job, self.paths, self.progress
        progress(f"job {job}: probe, demux, transcribe")
        yield [PartitionRun(f"{self.label}source, audio, transcript", "subtitle_source_job",
                            subtitle_job_partitions, job)]
        self.result.detected_language = manifest_for(paths, stage_dirs.TRANSCRIPT, job).details.get("language")
        progress(f"detected language: {self.result.detected_language}")
        progress(f"translate, write subtitles: {', '.join(self.languages)}")
        yield [
            PartitionRun(f"{self.label}subtitles [{lang}]", "subtitle_language_job", job_language_partitions,
                         dg.MultiPartitionKey({"job": job, "lang": lang}))
            for lang in self.languages
        ]
        for lang in self.languages:
            subs = manifest_for(paths, stage_dirs.SUBTITLES, job, lang)
            if subs.status == "skipped":
                self.result.skipped[lang] = subs.details.get("skipped_reason", "skipped")
                progress(f"skipped {lang}: {self.result.skipped[lang]}")
        if len(self.result.skipped) == len(self.languages):
            raise PipelineError("no requested language could be served: " + "; ".join(self.result.skipped.values()))
        mux_config = {"ops": {"subtitled_video": {"config": {
            "languages": self.languages, "container": self.container, "burn_in": self.burn_in}}}}
        yield [PartitionRun(f"{self.label}subtitled video", "subtitle_mux_job", subtitle_job_partitions, job,
                            mux_config)]

    @contextmanager
    def noting_failures(self) -> Iterator[None]:
        """A failure is noted in the job's outbox (FAILED.txt), as the sensor does for the daemon's runs."""
        try:
            yield
        except PipelineError as exc:
            note_cli_failure(self.instance, self.paths, stage_dirs.DOMAIN, self.job, str(exc), exc.run_id)
            raise

    def finish(self) -> SubtitleResult:
        self.result.outbox = self.paths.dir_of(stage_dirs.OUTBOX, self.job)
        if self.out_dir is not None:
            self.result.deliverables = copy_deliverables(self.paths, self.job, self.languages, self.out_dir,
                                                         self.container)
        return self.result

    def ended(self, error: Exception | None) -> "SubtitleResult | Exception":
        """The result once its runs are done, or the error that ended it (noted in its outbox)."""
        try:
            with self.noting_failures():
                if error is not None:
                    raise error
            return self.finish()
        except (PipelineError, Interrupted, OSError) as exc:
            return exc


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
