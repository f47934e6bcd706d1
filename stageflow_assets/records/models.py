"""The research record of a job: items in the order they happened, whatever the domain.

A journey records its items as it goes (tracker.py); a subtitle job or a deck gets the same
shape from its runs' event log and stage manifests. Every export (JSON, XML, PDF, DOCX,
RO-Crate) is written from a `Record`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# The item kinds (the project's taxonomy). Stage transitions and the pipeline's start, end and
# error frame the rest; `stage_iteration` numbers Stille Post hops, `output_index` the output
# configuration an item belongs to.
ItemKind = Literal[
    "pipeline_start", "pipeline_complete", "pipeline_error",
    "stage_transition",
    "user_input", "translation",
    "safety_check", "blocked",
    "interception_iteration", "interception_final",
    "output_safety_check", "output_blocked",
    "output_image", "output_music", "output_video",
    # subtitle jobs and decks: one item per stage run, with its inputs and outputs
    "stage_run", "qc_check",
]


class FileRef(BaseModel):
    """A file an item made or read, relative to the record's base directory (STAGEFLOW_HOME)."""

    path: str
    sha256: str | None = None
    bytes: int | None = None
    media_type: str | None = None
    # "input" (what a stage read) or "output" (what it wrote); None: made by the item itself
    role: Literal["input", "output"] | None = None


class RecordItem(BaseModel):
    seq: int
    time: datetime
    kind: ItemKind
    stage: str  # "1".."4" for a journey, the asset key for other domains
    stage_iteration: int | None = None
    output_index: int | None = None
    content: str | None = None
    files: list[FileRef] = Field(default_factory=list)
    # everything passed to a backend, credentials already redacted (core/redact.py)
    parameters: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    backend: str | None = None
    duration_s: float | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Record(BaseModel):
    """One job's record: a journey, a video's subtitle job or a deck."""

    schema_version: Literal[1] = 1
    key: str  # the stageflow job key (or a run id when one run is exported)
    domain: Literal["journey", "subtitles", "vocabulary"]
    title: str  # the prompt, the video's name, the list's name
    created: datetime
    run_ids: list[str] = Field(default_factory=list)
    status: Literal["success", "failure", "blocked", "canceled", "running"] = "success"
    parameters: dict[str, Any] = Field(default_factory=dict)  # the job's options (redacted)
    items: list[RecordItem] = Field(default_factory=list)
