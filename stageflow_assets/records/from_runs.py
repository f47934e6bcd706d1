"""Record items of a subtitle job or a deck, read back from its runs' event logs and manifests.

One `stage_run` item per materialization (its manifest's config, provider versions, inputs and
outputs with sha256, timings), one `qc_check` item per asset check evaluation, and the runs'
start, end and failures. A manifest later overwritten by another run leaves that run with
what its materialization metadata kept (no checksums).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg

from stageflow_assets.core.events import one_line, step_error
from stageflow_assets.core.manifest import StageManifest, read_manifest
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.records.models import FileRef, RecordItem
from stageflow_assets.records.report import media_type, plain

ET = dg.DagsterEventType
WANTED = {ET.RUN_START, ET.RUN_SUCCESS, ET.RUN_FAILURE, ET.RUN_CANCELED, ET.STEP_FAILURE,
          ET.ASSET_MATERIALIZATION, ET.ASSET_CHECK_EVALUATION}
PARTITION_TAG = "dagster/partition"
_TABLE_ROW = re.compile(r"^\|\s*`(?P<path>[^`]+)`\s*\|\s*(?P<kind>[^|]*)\|\s*(?P<bytes>\d+)\s*\|")


def run_items(instance: dg.DagsterInstance, runs: list[dg.RunRecord], paths: StagePaths) -> list[RecordItem]:
    """The runs' items in the order their events were stored, numbered from 1."""
    found: list[tuple[float, int, dict[str, Any]]] = []
    for run_record in runs:
        run = run_record.dagster_run
        for record in instance.get_records_for_run(run.run_id, of_type=WANTED).records:
            fields = _item(record.event_log_entry, run, paths)
            if fields is not None:
                found.append((record.event_log_entry.timestamp, record.storage_id, fields))
    found.sort(key=lambda f: f[:2])
    return [RecordItem(seq=n, **fields) for n, (_, _, fields) in enumerate(found, start=1)]


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


def _item(entry: dg.EventLogEntry, run: dg.DagsterRun, paths: StagePaths) -> dict[str, Any] | None:
    event = entry.dagster_event
    kind = event.event_type
    common = {"time": _when(entry.timestamp), "run_id": run.run_id}
    if kind == ET.ASSET_MATERIALIZATION:
        return {**common, **_stage_run(entry.asset_materialization, run.run_id, entry.timestamp, paths)}
    if kind == ET.ASSET_CHECK_EVALUATION:
        return {**common, **_check(entry.asset_check_evaluation)}
    if kind == ET.STEP_FAILURE:
        return {**common, "kind": "pipeline_error", "stage": event.step_key or "pipeline",
                "content": step_error(event.step_failure_data),
                "metadata": {"partition": run.tags.get(PARTITION_TAG)}}
    frame = {"stage": "pipeline", "metadata": {"dagster_job": run.job_name, "partition": run.tags.get(PARTITION_TAG),
                                               "source": run.tags.get(SOURCE_TAG), "job": run.tags.get(JOB_TAG)}}
    if kind == ET.RUN_START:
        return {**common, **frame, "kind": "pipeline_start", "content": run.job_name,
                "parameters": dict(run.run_config or {})}
    if kind == ET.RUN_SUCCESS:
        return {**common, **frame, "kind": "pipeline_complete", "content": "run succeeded"}
    if kind == ET.RUN_FAILURE:
        return {**common, **frame, "kind": "pipeline_error", "content": one_line(entry.message, "run failed")}
    if kind == ET.RUN_CANCELED:
        return {**common, **frame, "kind": "pipeline_error", "content": "run canceled",
                "metadata": {**frame["metadata"], "canceled": True}}
    return None


def _refs(manifest: StageManifest) -> list[FileRef]:
    return [FileRef(path=r.path, sha256=r.sha256, bytes=r.bytes, role=role,
                    media_type=media_type(FileRef(path=r.path)))
            for role, records in (("input", manifest.inputs), ("output", manifest.outputs)) for r in records]


def _stage_run(materialization: dg.AssetMaterialization, run_id: str, timestamp: float,
               paths: StagePaths) -> dict[str, Any]:
    meta = materialization.metadata
    asset = materialization.asset_key.to_user_string()
    manifest_path = meta.get("manifest")
    manifest = read_manifest(Path(str(manifest_path.value))) if manifest_path is not None else None
    base = {"kind": "stage_run", "stage": asset}
    if manifest is not None and manifest.run_id == run_id:
        config = manifest.config
        details = {k: v for k, v in manifest.details.items() if k != "preview"}
        return {
            **base, "time": manifest.started, "duration_s": manifest.duration_s, "parameters": config,
            **_backend(config),
            "content": manifest.details.get("preview"), "files": _refs(manifest),
            "metadata": {
                "partition": materialization.partition, "status": manifest.status, "reused": manifest.reused,
                "reused_from_run": manifest.reused_from_run, "code_version": manifest.code_version,
                "fingerprint": manifest.fingerprint, "provider_versions": manifest.provider_versions,
                "timings": manifest.timings, "resources": manifest.resources, "details": details,
                "warnings": manifest.warnings, "errors": [e.model_dump() for e in manifest.errors],
                "manifest": paths.relative(Path(str(manifest_path.value))),
            },
        }
    # the stage ran again since: what the materialization kept (file checksums only as 12-hex prefixes)
    config = _value(meta.get("config")) or {}
    seconds = _value(meta.get("duration_s"))
    return {
        **base, "time": _when(timestamp - (seconds or 0)), "duration_s": seconds, "parameters": config,
        **_backend(config),
        "files": _table_refs(meta, "input") + _table_refs(meta, "output"),
        "metadata": {"partition": materialization.partition, "status": _value(meta.get("status")),
                     "reused": _value(meta.get("reused")),
                     "provider_versions": _value(meta.get("provider_versions")) or {},
                     "timings": _value(meta.get("timings_s")) or {}, "manifest_superseded": True},
    }


def _table_refs(meta: dict[str, Any], role: str) -> list[FileRef]:
    table = meta.get(f"{role}s")
    refs = []
    for line in str(_value(table) or "").splitlines():
        match = _TABLE_ROW.match(line.strip())
        if match:
            path = match.group("path")
            refs.append(FileRef(path=path, bytes=int(match.group("bytes")), role=role,
                                media_type=media_type(FileRef(path=path))))
    return refs


def _check(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    severity = getattr(evaluation.severity, "value", evaluation.severity)
    return {
        "kind": "qc_check", "stage": evaluation.asset_key.to_user_string(),
        "content": f"{evaluation.check_name}: {'passed' if evaluation.passed else 'failed'}",
        "metadata": {"check": evaluation.check_name, "passed": evaluation.passed, "severity": severity,
                     "partition": evaluation.partition, "description": evaluation.description,
                     "values": {k: _value(v) for k, v in (evaluation.metadata or {}).items()}},
    }


def _value(metadata_value: Any) -> Any:
    """A metadata value as plain JSON-able data."""
    if metadata_value is None:
        return None
    value = getattr(metadata_value, "value", metadata_value)
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return plain(value)


def _backend(config: dict[str, Any]) -> dict[str, str | None]:
    """The backend and model a stage's config names (a TTS stage calls its backend `engine`)."""
    return {"backend": _text(config.get("backend")) or _text(config.get("engine")), "model": _text(config.get("model"))}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
