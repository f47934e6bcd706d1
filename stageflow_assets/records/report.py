"""What every human-readable export shows, worked out once: steps, the Stille Post chain,
the media files, flattened parameters. The format modules only lay these out."""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stageflow_assets.core.hashing import sha256_file
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.records.models import FileRef, Record, RecordItem

JOURNEY_STAGES = {"1": "translation and safety", "2": "interception", "3": "output safety", "4": "media"}
FRAME_KINDS = ("pipeline_start", "pipeline_complete", "stage_transition")
# where an interception iteration names the languages it went between (first match wins)
_PAIR_KEYS = (("source_language", "target_language"), ("source_lang", "target_lang"), ("from", "to"),
              ("source", "target"))


@dataclass
class Step:
    """One execution: a journey stage, or one stage run (materialization) of a subtitle job or deck."""

    id: str
    title: str
    stage: str
    items: list[RecordItem] = field(default_factory=list)
    checks: list[RecordItem] = field(default_factory=list)

    @property
    def main(self) -> RecordItem:
        return self.items[0]


@dataclass(frozen=True)
class ChainRow:
    number: int
    pair: str
    text: str
    backend: str
    duration: str


@dataclass(frozen=True)
class MediaFile:
    ref: FileRef
    media_type: str
    path: Path | None  # on disk and (where the record knows its checksum) unchanged; else None
    item: RecordItem


def stage_title(record: Record, stage: str) -> str:
    if record.domain == "journey" and stage in JOURNEY_STAGES:
        return f"Stage {stage}: {JOURNEY_STAGES[stage]}"
    return stage


def partition_of(item: RecordItem) -> str | None:
    return item.metadata.get("partition") or None


def steps(record: Record) -> list[Step]:
    """Journey: one step per stage. Other domains: one per stage run (its QC checks with it) and
    one per failed stage."""
    out: dict[str, Step] = {}
    if record.domain == "journey":
        for item in record.items:
            if item.kind in FRAME_KINDS or (item.kind == "pipeline_error" and item.stage == "pipeline"):
                continue
            step = out.setdefault(item.stage, Step(f"stage-{item.stage}", stage_title(record, item.stage), item.stage))
            step.items.append(item)
        return list(out.values())
    for item in record.items:
        if item.kind == "stage_run" or (item.kind == "pipeline_error" and item.stage != "pipeline"):
            part = partition_of(item)
            title = f"{item.stage} [{part}]" if part else item.stage
            out[f"step-{item.seq}"] = Step(f"step-{item.seq}", title, item.stage, [item])
    for check in (i for i in record.items if i.kind == "qc_check"):
        owner = next((s for s in reversed(out.values()) if s.stage == check.stage and s.main.run_id == check.run_id
                      and partition_of(s.main) == partition_of(check)), None)
        if owner is not None:
            owner.checks.append(check)
    return list(out.values())


def language_pair(item: RecordItem) -> str:
    for source in (item.parameters, item.metadata):
        pair = source.get("pair") or source.get("language_pair")
        if isinstance(pair, str) and pair:
            return pair.replace("-", " → ", 1) if "→" not in pair else pair
        for a, b in _PAIR_KEYS:
            if source.get(a) and source.get(b):
                return f"{source[a]} → {source[b]}"
    return ""


def duration(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f} s"


def chain_rows(record: Record) -> list[ChainRow]:
    """The Stille Post chain: one row per interception iteration, in iteration order."""
    hops = sorted((i for i in record.items if i.kind == "interception_iteration"),
                  key=lambda i: (i.output_index or 0, i.stage_iteration or 0, i.seq))
    return [
        ChainRow(item.stage_iteration or n, language_pair(item), item.content or "",
                 ", ".join(x for x in (item.backend, item.model) if x), duration(item.duration_s))
        for n, item in enumerate(hops, start=1)
    ]


def prompt(record: Record) -> str | None:
    first = next((i for i in record.items if i.kind == "user_input" and i.content), None)
    return first.content if first else None


def plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as dotted names; lists and scalars as they are."""
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def shown(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the empty ones (a report has no use for `null` rows)."""
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


def media_type(ref: FileRef) -> str:
    return ref.media_type or mimetypes.guess_type(ref.path)[0] or "application/octet-stream"


class FileCheck:
    """Which recorded files are still on disk as recorded (checksums computed once per path)."""

    def __init__(self, paths: StagePaths) -> None:
        self.paths = paths
        self._sha: dict[Path, str] = {}

    def sha256(self, path: Path) -> str:
        if path not in self._sha:
            self._sha[path] = sha256_file(path)
        return self._sha[path]

    def resolve(self, ref: FileRef) -> Path | None:
        path = self.paths.absolute(ref.path)
        if not path.is_file():
            return None
        if ref.sha256 and self.sha256(path) != ref.sha256:
            return None  # replaced since: not what this record describes
        return path


def media_files(record: Record, check: FileCheck) -> list[MediaFile]:
    """Every file the record names, once each (first mention), in record order."""
    seen: dict[tuple[str, str | None], MediaFile] = {}
    for item in record.items:
        for ref in item.files:
            if (ref.path, ref.sha256) not in seen:
                seen[(ref.path, ref.sha256)] = MediaFile(ref, media_type(ref), check.resolve(ref), item)
    return list(seen.values())


def images(record: Record, check: FileCheck) -> list[MediaFile]:
    return [m for m in media_files(record, check) if m.media_type.startswith("image/") and m.path is not None]
