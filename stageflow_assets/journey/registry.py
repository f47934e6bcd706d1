"""Registered journeys: what a `journey` partition key stands for (`job.json` in its job dir).

A journey started from the command line gets a new key each time (UTC time + random suffix: a
prompt's words never become a directory name); one from the prompts inbox is keyed by the file,
so dropping the same file again is the same journey.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.keys import KEY_PATTERN, sampled_content_hash, slug
from stageflow_assets.core.languages import is_known
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.job_records import read_record, write_record
from stageflow_assets.journey.models import JourneyJob
from stageflow_assets.journey.stage_dirs import DOMAIN

MAX_PROMPT_CHARS = 4000
MAX_ITERATIONS = 8
MAX_OUTPUTS = 8


def new_journey_key(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def inbox_journey_key(path: Path) -> str:
    key = f"{slug(path.stem, max_len=40, fallback='prompt')}-{sampled_content_hash(path)}"
    assert KEY_PATTERN.match(key), key
    return key


def register_journey(paths: StagePaths, key: str, **options: Any) -> JourneyJob:
    """Check the options (one line on what is wrong) and record them under `key`."""
    if "seed" not in options or options["seed"] is None:
        options["seed"] = secrets.randbelow(2**31)
    try:
        job = JourneyJob(job=key, registered_at=datetime.now(timezone.utc), **options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"journey option {where}: {first['msg']}", option=where) from exc
    check_options(job)
    write_record(paths, DOMAIN, key, job)
    return job


def check_options(job: JourneyJob) -> None:
    from stageflow_assets.journey.interception import interception_names
    from stageflow_assets.journey.offline_media import OutputConfig
    from stageflow_assets.journey.safety import LEVELS

    job.prompt = job.prompt.strip()
    job.interception = job.interception.strip().lower()
    if not job.prompt:
        raise BadInputError("the prompt is empty: say what the journey starts from")
    if len(job.prompt) > MAX_PROMPT_CHARS:
        raise BadInputError(f"the prompt has {len(job.prompt)} characters; at most {MAX_PROMPT_CHARS}")
    for name, code in (("--lang", job.lang), ("--work-lang", job.work_lang), *(("--via", c) for c in job.via)):
        if not is_known(code):
            raise BadInputError(f"{name} {code}: not an ISO 639 language code (e.g. en, de, es)")
    job.lang, job.work_lang, job.via = job.lang.lower(), job.work_lang.lower(), [c.lower() for c in job.via]
    if job.interception not in interception_names():
        raise BadInputError(f"--interception {job.interception}: use one of {', '.join(interception_names())}")
    if job.iterations is not None and not 1 <= job.iterations <= MAX_ITERATIONS:
        raise BadInputError(f"--iterations {job.iterations}: use 1 to {MAX_ITERATIONS}")
    if job.safety not in LEVELS:
        raise BadInputError(f"--safety {job.safety}: use one of {', '.join(LEVELS)}")
    if not job.outputs:
        job.outputs = ["image"]
    if len(job.outputs) > MAX_OUTPUTS:
        raise BadInputError(f"{len(job.outputs)} outputs: at most {MAX_OUTPUTS} per journey")
    for spec in job.outputs:
        OutputConfig.parse(spec)  # raises BadInputError naming what is wrong with the spec
    if job.seed < 0:
        raise BadInputError(f"--seed {job.seed}: use a number from 0")


def load_journey(paths: StagePaths, key: str) -> JourneyJob:
    return read_record(paths, DOMAIN, key, JourneyJob, f"journey {key} is not registered: run "
                       "`stageflow journey PROMPT ...` or drop a prompt into the prompts inbox")
