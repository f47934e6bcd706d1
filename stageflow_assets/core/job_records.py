"""What a partition key stands for: one `job.json` per job dir, written and read the same way."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.paths import StagePaths, write_text_atomic

JOB_FILE = "job.json"
R = TypeVar("R", bound=BaseModel)


def write_record(paths: StagePaths, domain: str, job: str, record: BaseModel) -> None:
    write_text_atomic(paths.job_dir(domain, job) / JOB_FILE, record.model_dump_json(indent=2))


def read_record(paths: StagePaths, domain: str, job: str, model: type[R], missing: str) -> R:
    """The job's record; `missing` is the one-line error (what to run) when there is none."""
    path = paths.job_dir(domain, job) / JOB_FILE
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValidationError) as exc:
        raise BadInputError(missing, job=job, registry=str(path)) from exc
