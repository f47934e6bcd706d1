"""Registered videos: which file a `job` partition key stands for."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.keys import job_key_for_file
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.job_records import read_record, write_record
from stageflow_assets.subtitles.stage_dirs import DOMAIN


class VideoJob(BaseModel):
    job: str
    source_path: str
    original_name: str
    registered_at: datetime
    glossary_path: str | None = None


def register_video(paths: StagePaths, video: Path, glossary: Path | None = None) -> VideoJob:
    """Record `video` (and its own glossary, if any) under its job key: same file, same key."""
    video = video.expanduser().resolve()
    if not video.is_file():
        raise BadInputError(f"{video}: no such file", input=str(video))
    if glossary is not None and not glossary.is_file():
        raise BadInputError(f"{glossary}: no such glossary file", glossary=str(glossary))
    job = job_key_for_file(video)
    record = VideoJob(
        job=job,
        source_path=str(video),
        original_name=video.name,
        registered_at=datetime.now(timezone.utc),
        glossary_path=str(glossary.expanduser().resolve()) if glossary else None,
    )
    write_record(paths, DOMAIN, job, record)
    return record


def load_job(paths: StagePaths, job: str) -> VideoJob:
    return read_record(paths, DOMAIN, job, VideoJob, f"job {job} has no registered video: run "
                       "`stageflow subtitles VIDEO` or drop the video into the inbox")


def global_glossary(paths: StagePaths) -> Path:
    return paths.root / "glossary.csv"
