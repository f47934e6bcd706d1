"""`export(record, fmt, out_dir, paths)`: one record, one file `<key><suffix>` at the top of `out_dir`.

Every export is written from the redacted record, atomically (a reader never sees half a file).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from stageflow_assets.core.keys import KEY_PATTERN, slug
from stageflow_assets.core.paths import StagePaths, atomic_path
from stageflow_assets.records.formats import FORMATS, SUFFIXES, file_name
from stageflow_assets.records.models import Record
from stageflow_assets.records.redaction import redact_record

__all__ = ["FORMATS", "SUFFIXES", "ExportError", "export", "export_all"]
_MODULES = {"json": "export_json", "xml": "export_xml", "pdf": "export_pdf", "docx": "export_docx",
            "ro-crate": "export_crate"}


class ExportError(RuntimeError):
    """An export cannot be written here (e.g. a font is not installed): one line saying what to do."""


def export(record: Record, fmt: str, out_dir: Path, paths: StagePaths) -> Path:
    """Write `record` as `fmt` to `out_dir/<key><suffix>` and return that path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    module = importlib.import_module(f"stageflow_assets.records.{_MODULES[fmt]}")
    record = redact_record(record)
    key = record.key if KEY_PATTERN.match(record.key) else slug(record.key, fallback="record")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / file_name(key, fmt)
    with atomic_path(target) as tmp:
        module.write(record, tmp, paths)
    return target


def export_all(record: Record, formats: list[str] | tuple[str, ...], out_dir: Path, paths: StagePaths) -> list[Path]:
    return [export(record, fmt, out_dir, paths) for fmt in dict.fromkeys(formats)]
