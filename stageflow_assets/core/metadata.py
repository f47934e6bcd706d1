"""The manifest as Dagster materialization metadata: the same facts, readable in the UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from stageflow_assets.core.manifest import MANIFEST_NAME, StageManifest
from stageflow_assets.core.paths import StagePaths


def _files_table(records: list) -> str:
    rows = ["| file | kind | bytes | sha256 |", "|---|---|---:|---|"]
    rows += [f"| `{r.path}` | {r.kind} | {r.bytes} | `{r.sha256[:12]}` |" for r in records]
    return "\n".join(rows)


def _value(value: Any) -> Any:
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, str):
        return dg.MetadataValue.text(value)
    return dg.MetadataValue.json(value)


def manifest_metadata(
    paths: StagePaths, directory: Path, manifest: StageManifest
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "status": manifest.status,
        "reused": dg.MetadataValue.bool(manifest.reused),
        "duration_s": dg.MetadataValue.float(manifest.duration_s or 0.0),
        "stage_dir": dg.MetadataValue.path(str(directory)),
        "manifest": dg.MetadataValue.path(str(directory / MANIFEST_NAME)),
        "config": dg.MetadataValue.json(manifest.config),
        "fingerprint": manifest.fingerprint[:16],
    }
    if manifest.reused_from_run:
        meta["reused_from_run"] = manifest.reused_from_run
    if manifest.outputs:
        meta["path"] = dg.MetadataValue.path(str(paths.absolute(manifest.outputs[0].path)))
        meta["outputs"] = dg.MetadataValue.md(_files_table(manifest.outputs))
    if manifest.inputs:
        meta["inputs"] = dg.MetadataValue.md(_files_table(manifest.inputs))
    if manifest.provider_versions:
        meta["provider_versions"] = dg.MetadataValue.json(manifest.provider_versions)
    if manifest.timings:
        meta["timings_s"] = dg.MetadataValue.json(manifest.timings)
    if manifest.resources:
        meta["resources"] = dg.MetadataValue.json(manifest.resources)
    if manifest.warnings:
        meta["warnings"] = dg.MetadataValue.json(manifest.warnings)
    for key, value in manifest.details.items():
        if key == "preview":
            meta["preview"] = dg.MetadataValue.md(value)
        else:
            meta[key] = _value(value)
    return meta
