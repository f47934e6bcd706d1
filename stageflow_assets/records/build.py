"""The record of a job (a journey, a video, a deck) or of one run, from the instance and the stage dirs.

A journey's items are written by its stages as `record_items.jsonl` in each stage dir; a subtitle
job's or a deck's come from its runs' event logs and stage manifests (`from_runs.py`). Either
way the record leaves here redacted.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import ValidationError

from stageflow_assets.core.keys import KEY_PATTERN
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.job_records import JOB_FILE
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.records.from_runs import run_items
from stageflow_assets.records.models import Record, RecordItem
from stageflow_assets.records.redaction import redact_record
from stageflow_assets.records.report import FileCheck, media_type
from stageflow_assets.records.tracker import ITEMS_FILE, read_items

DOMAINS = ("journey", "subtitles", "vocabulary")
DOMAIN_TAG = "stageflow/domain"
JOURNEY_OPTIONS_FILES = ("journey.json", JOB_FILE)
_TITLE_FIELDS = ("prompt", "deck", "original_name", "title")
_NOT_PARAMETERS = ("job", "key", "registered_at", "created")


class UnknownRecord(LookupError):
    """No job and no run by that name."""


class RecordError(RuntimeError):
    """A job's record files cannot be read (one line: which file, what is wrong)."""


def record_for(instance: dg.DagsterInstance, key_or_run_id: str, paths: StagePaths) -> Record:
    """The record of the job `key_or_run_id` (all runs tagged with it), or of that one run."""
    run = _run_record(instance, key_or_run_id)
    if run is not None:
        job = run.dagster_run.tags.get(JOB_TAG)
        domain = _domain(paths, job, [run]) if job else None
        if domain is None:
            raise UnknownRecord(f"run {key_or_run_id} belongs to no stageflow job (it has no {JOB_TAG} tag)")
        return _record(instance, paths, domain, job, [run], run_id=run.dagster_run.run_id)
    if not KEY_PATTERN.match(key_or_run_id):
        raise UnknownRecord(f"{key_or_run_id!r} is neither a job key nor a run id")
    runs = list(instance.get_run_records(filters=dg.RunsFilter(tags={JOB_TAG: key_or_run_id}),
                                         order_by="create_timestamp", ascending=True))
    domain = _domain(paths, key_or_run_id, runs)
    if domain is None:
        raise UnknownRecord(f"no job or run {key_or_run_id} (not in the instance, nothing under {paths.root})")
    return _record(instance, paths, domain, key_or_run_id, runs)


def journey_record(paths: StagePaths, key: str, runs: list[dg.RunRecord] = (), run_id: str | None = None) -> Record:
    """A journey's record from its stage dirs alone (no instance needed); `run_id`: that run's items."""
    return _record(None, paths, "journey", key, list(runs), run_id)


def _record(instance: dg.DagsterInstance | None, paths: StagePaths, domain: str, job: str,
            runs: list[dg.RunRecord], run_id: str | None = None) -> Record:
    job_dir = paths.job_dir(domain, job)
    if domain == "journey":
        items = _journey_items(paths, job_dir, run_id)
        options = _read_json(*(job_dir / name for name in JOURNEY_OPTIONS_FILES))
        if not options and items:
            options = dict(items[0].parameters)
    else:
        items = run_items(instance, runs, paths)
        options = _read_json(job_dir / JOB_FILE)
    title = next((str(options[f]) for f in _TITLE_FIELDS if options.get(f)), None) \
        or next((i.content for i in items if i.kind == "user_input" and i.content), None) or job
    parameters = options.get("options") if isinstance(options.get("options"), dict) else {
        k: v for k, v in options.items() if k not in _NOT_PARAMETERS + ("prompt",)}
    run_ids = [r.dagster_run.run_id for r in runs] or list(dict.fromkeys(i.run_id for i in items if i.run_id))
    record = Record(
        key=run_id or job, domain=domain, title=title, created=_created(runs, items, options, job_dir),
        run_ids=run_ids, status=_status(runs, items), parameters=parameters, items=items,
    )
    return redact_record(record)


def _run_record(instance: dg.DagsterInstance, run_id: str) -> dg.RunRecord | None:
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run_id]), limit=1)
    return records[0] if records else None


def _domain(paths: StagePaths, job: str, runs: list[dg.RunRecord]) -> str | None:
    for run in runs:
        if run.dagster_run.tags.get(DOMAIN_TAG) in DOMAINS:
            return run.dagster_run.tags[DOMAIN_TAG]
    if not KEY_PATTERN.match(job):
        return None
    return next((d for d in DOMAINS if paths.job_dir(d, job).is_dir()), None)


def _journey_items(paths: StagePaths, job_dir: Path, run_id: str | None) -> list[RecordItem]:
    items: list[RecordItem] = []
    for path in sorted(job_dir.rglob(ITEMS_FILE)):
        try:
            items.extend(read_items(path))
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RecordError(f"{path}: not a list of record items ({first})") from exc
    if run_id is not None:
        items = [i for i in items if i.run_id == run_id]
    items.sort(key=lambda i: (i.seq, i.time.timestamp()))
    check = FileCheck(paths)
    return [_with_file_facts(i, check) for i in items]


def _with_file_facts(item: RecordItem, check: FileCheck) -> RecordItem:
    """Checksums, sizes and media types of files the item named without them (still on disk)."""
    if all(f.sha256 and f.bytes is not None and f.media_type for f in item.files):
        return item
    files = []
    for ref in item.files:
        path = check.paths.absolute(ref.path)
        facts: dict[str, Any] = {"media_type": ref.media_type or media_type(ref)}
        if path.is_file():
            facts.update(sha256=ref.sha256 or check.sha256(path),
                         bytes=ref.bytes if ref.bytes is not None else path.stat().st_size)
        files.append(ref.model_copy(update=facts))
    return item.model_copy(update={"files": files})


def _read_json(*candidates: Path) -> dict[str, Any]:
    for path in candidates:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except ValueError as exc:
            raise RecordError(f"{path}: not JSON ({exc})") from exc
        if isinstance(data, dict):
            return data
    return {}


def _created(runs: list[dg.RunRecord], items: list[RecordItem], options: dict[str, Any], job_dir: Path) -> datetime:
    times = [r.create_timestamp for r in runs] + [i.time for i in items]
    times = [t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in times]
    if times:
        return min(times)
    for name in ("created", "registered_at"):
        if options.get(name):
            try:
                return datetime.fromisoformat(str(options[name]))
            except ValueError:
                pass
    return datetime.fromtimestamp(job_dir.stat().st_mtime, timezone.utc)


def _status(runs: list[dg.RunRecord], items: list[RecordItem]) -> str:
    if any(i.kind in ("blocked", "output_blocked") for i in items):
        return "blocked"
    if runs:
        last = runs[-1].dagster_run.status
        if last == dg.DagsterRunStatus.SUCCESS:
            return "success"
        if last == dg.DagsterRunStatus.FAILURE:
            return "failure"
        if last in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING):
            return "canceled"
        return "running"
    return "failure" if any(i.kind == "pipeline_error" for i in items) else "success"
