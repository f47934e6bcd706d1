"""Where a deck's Claude Message Batch chain stands, and the one status call that decides what next.

`poll_batch` is the single decision both waiters use: `claude_batch_sensor` (under the daemon,
once per deck per tick) and the CLI (`pipeline._batch_path`, in its wait loop). Which batch is
awaited is read from the batch stages' manifests (no API call); only then is its status asked.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stageflow_assets.core.errors import StageError
from stageflow_assets.core.manifest import stage_manifest
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.claude import BatchDoc, BatchResultsDoc

# none: no batch submitted; ingested: nothing awaited any more; handled: awaited, but its ingestion
# was requested already; not_asked: awaited, status not asked (the caller's budget is spent);
# unavailable: the status call failed; running / ended: what Claude says
PollState = Literal["none", "ingested", "handled", "not_asked", "unavailable", "running", "ended"]


@dataclass(frozen=True)
class BatchPoll:
    state: PollState
    submitted_id: str | None = None  # the batch claude_batch submitted (round 0)
    batch_id: str | None = None  # the awaited one: the submitted batch or the follow-up in flight
    followup: bool = False
    status: str = ""  # Claude's processing_status
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def asked(self) -> bool:
        """True when this poll made a status call."""
        return self.state in ("unavailable", "running", "ended")

    @property
    def what(self) -> str:
        return "follow-up batch" if self.followup else "batch"


def poll_batch(paths: StagePaths, job: str, claude: ClaudeResource, handled: Container[str] = (),
               ask: bool = True) -> BatchPoll:
    """The batch deck `job` waits on and its status: `ended` means ingest now.

    At most one status call, and none for a batch in `handled` (its ingestion was requested
    already) or when `ask` is False (the caller's calls for this round are spent)."""
    batch = submitted_batch(paths, job)
    if batch is None:
        return BatchPoll("none")
    awaited = awaited_batch(paths, job)
    if awaited is None:
        return BatchPoll("ingested", submitted_id=batch.batch_id)
    batch_id, followup = awaited
    found = dict(submitted_id=batch.batch_id, batch_id=batch_id, followup=followup)
    if batch_id in handled:
        return BatchPoll("handled", **found)
    if not ask:
        return BatchPoll("not_asked", **found)
    try:
        status, counts = claude.batch_status(batch_id)
    except StageError as exc:
        return BatchPoll("unavailable", **found, error=exc.message)
    return BatchPoll("ended" if status == "ended" else "running", **found, status=status, counts=counts)


def submitted_batch(paths: StagePaths, job: str) -> BatchDoc | None:
    """The batch `claude_batch` last submitted for this deck, if any."""
    manifest = stage_manifest(paths, stage_dirs.CLAUDE_BATCH, job)
    if manifest is None or manifest.status != "success":
        return None
    try:
        return BatchDoc.model_validate_json(paths.absolute(manifest.output("batch").path).read_text(encoding="utf-8"))
    except (KeyError, FileNotFoundError, ValueError):
        return None


def awaited_batch(paths: StagePaths, job: str) -> tuple[str, bool] | None:
    """(batch id, is a follow-up) of the batch this deck waits on: the submitted batch while it is
    not ingested, then the follow-up batch in flight, if any; None when nothing is awaited."""
    batch = submitted_batch(paths, job)
    if batch is None:
        return None
    done = ingested_results(paths, job)
    if done is None or done[0].batch_id != batch.batch_id:
        return batch.batch_id, False
    if done[0].followup_batch_id:
        return done[0].followup_batch_id, True
    return None


def ingested_results(paths: StagePaths, job: str) -> tuple[BatchResultsDoc, Path] | None:
    """(results, their file) from the last successful `claude_batch_results` of this deck."""
    manifest = stage_manifest(paths, stage_dirs.CLAUDE_BATCH_RESULTS, job)
    if manifest is None or manifest.status != "success":
        return None
    try:
        path = paths.absolute(manifest.output("batch_results").path)
        return BatchResultsDoc.model_validate_json(path.read_text(encoding="utf-8")), path
    except (KeyError, FileNotFoundError, ValueError):
        return None
