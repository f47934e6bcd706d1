"""The record as JSON, valid against `schema/record.schema.json`."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from stageflow_assets.core.paths import StagePaths
from stageflow_assets.records.models import Record

SCHEMA = files("stageflow_assets.records") / "schema" / "record.schema.json"


def write(record: Record, target: Path, paths: StagePaths) -> None:
    target.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
