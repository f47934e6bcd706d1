"""The stage manifest: what a stage read, wrote and was configured with.

Written as `manifest.json` in the stage dir and mirrored in the materialization metadata.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from stageflow_assets.core.hashing import sha256_json

if TYPE_CHECKING:
    from stageflow_assets.core.paths import StagePaths, StageSpec

MANIFEST_NAME = "manifest.json"
FAILED_MANIFEST_NAME = "manifest.failed.json"


class FileRecord(BaseModel):
    path: str = Field(description="relative to STAGEFLOW_HOME")
    sha256: str
    bytes: int
    kind: str = ""
    format: str = ""
    language: str | None = None
    upstream_asset: str | None = None
    upstream_partition: str | None = None


class ErrorRecord(BaseModel):
    type: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class StageManifest(BaseModel):
    domain: str
    stage: str
    partition: str
    run_id: str
    status: Literal["success", "failed", "skipped"]
    started: datetime
    finished: datetime | None = None
    duration_s: float | None = None
    code_version: str = ""
    fingerprint: str = ""
    reused: bool = False
    reused_from_run: str | None = None
    inputs: list[FileRecord] = Field(default_factory=list)
    outputs: list[FileRecord] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    provider_versions: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    errors: list[ErrorRecord] = Field(default_factory=list)

    def output(self, kind: str) -> FileRecord:
        for record in self.outputs:
            if record.kind == kind:
                return record
        raise KeyError(f"{self.stage} [{self.partition}] has no output of kind {kind!r}")

    def outputs_of(self, kind: str) -> list[FileRecord]:
        return [r for r in self.outputs if r.kind == kind]

    @property
    def data_version(self) -> str:
        """Hash of what the stage produced: unchanged outputs keep downstream fresh."""
        return sha256_json(
            {"outputs": sorted((r.kind, r.sha256) for r in self.outputs), "status": self.status}
        )[:16]


def read_manifest(path: Path) -> StageManifest | None:
    try:
        return StageManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValidationError, ValueError):
        return None


def stage_manifest(paths: StagePaths, spec: StageSpec, job: str, lang: str | None = None) -> StageManifest | None:
    """A stage's current manifest for one partition, if it has one."""
    return read_manifest(paths.dir_of(spec, job, lang) / MANIFEST_NAME)
