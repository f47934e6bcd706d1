"""A word list through the vocabulary assets, run by run, as the CLI drives it.

With the Claude lexicon and a list longer than its batch threshold the CLI takes the Message
Batches path: `claude_batch_job`, then it polls the batch itself (as `claude_batch_sensor` does
under the daemon) and runs `claude_batch_ingest_job` when the batch ends.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dagster as dg

from stageflow_assets.core.keys import slug
from stageflow_assets.core.manifest import stage_manifest
from stageflow_assets.core.outbox import note_cli_failure
from stageflow_assets.core.paths import StagePaths, atomic_path
from stageflow_assets.core.run_sequence import PipelineError, RunSequence, manifest_for
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.core.errors import BadInputError
from stageflow_assets.providers.lexicon import Lexicon
from stageflow_assets.vocabulary.batch_polling import awaited_batch, poll_batch, submitted_batch
from stageflow_assets.vocabulary.claude import ClaudeLexicon
from stageflow_assets.vocabulary.registry import register_word_list
from stageflow_assets.vocabulary.wordlist import parse_word_list

BATCH_POLL_ENV = "STAGEFLOW_CLAUDE_BATCH_POLL_S"  # seconds between status calls (default 60)
BATCH_WAIT_ENV = "STAGEFLOW_CLAUDE_BATCH_WAIT_S"  # give up waiting after (default 25 h)


@dataclass
class SyncRequest:
    collection: Path | None = None
    ankiconnect_url: str = ""
    prune: bool = False  # delete the deck's notes whose word left the list instead of tagging them


@dataclass
class VocabResult:
    job: str
    runs: list[tuple[str, str]] = field(default_factory=list)  # (what, run id)
    deck_path: Path | None = None
    deck: dict = field(default_factory=dict)
    deck_reused: bool = False
    analysis: dict = field(default_factory=dict)
    sync: dict = field(default_factory=dict)
    outbox: Path | None = None  # the deck's outbox folder, delivered by the deck run


def run_vocab(
    instance: dg.DagsterInstance, paths: StagePaths, words: Path, deck: str, language: str = "en",
    native: str | None = None, reverse: bool = False, out_dir: Path | None = None,
    sync: SyncRequest | None = None, force: bool = False, progress: Callable[[str], None] = lambda _: None,
    max_runtime_s: float | None = None,
) -> VocabResult:
    job = register_word_list(paths, words, deck, language, native, reverse).job
    instance.add_dynamic_partitions(word_list_partitions.name, [job])
    result = VocabResult(job=job)
    runs = RunSequence(instance, job, force, progress, result.runs, max_runtime_s=max_runtime_s)
    try:
        if not _batch_path(paths, words, job, runs, progress):
            progress(f"deck {deck!r} ({job}): parse, analyse, speak, build")
            runs.run("deck", "vocabulary_deck_job", word_list_partitions, job)
    except PipelineError as exc:
        note_cli_failure(instance, paths, stage_dirs.DOMAIN, job, str(exc), exc.run_id)
        raise
    delivered = stage_manifest(paths, stage_dirs.OUTBOX, job)
    if delivered is not None and delivered.status == "success":
        result.outbox = paths.dir_of(stage_dirs.OUTBOX, job)
    result.analysis = manifest_for(paths, stage_dirs.WORD_ANALYSIS, job).details
    built = manifest_for(paths, stage_dirs.ANKI_DECK, job)
    result.deck = built.details
    result.deck_reused = built.reused
    if out_dir is not None:
        result.deck_path = out_dir / f"{slug(deck, fallback='deck')}.apkg"
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(result.deck_path) as tmp:
            shutil.copyfile(paths.absolute(built.output("apkg").path), tmp)
    if sync is not None:
        target = {"target": "collection", "collection_path": str(sync.collection)} if sync.collection else {
            "target": "ankiconnect", "ankiconnect_url": sync.ankiconnect_url}
        run_config = {"ops": {"anki_sync": {"config": {**target, "prune": sync.prune}}}}
        runs.run("sync", "anki_sync_job", word_list_partitions, job, run_config)
        result.sync = manifest_for(paths, stage_dirs.ANKI_SYNC, job).details
    return result


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name) or str(default)
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise PipelineError(f"{name}={raw!r} is not a number of seconds") from None


def _code_location_lexicon() -> Lexicon:
    """The code location's own `lexicon` resource, its `EnvVar` key resolved as in a run."""
    from stageflow_assets.definitions import defs  # loads every domain: only on the way that needs it

    with dg.build_resources({"lexicon": defs.resources["lexicon"]}) as built:
        return built.lexicon


def _batch_path(paths: StagePaths, words: Path, job: str, runs: RunSequence,
                progress: Callable[[str], None]) -> bool:
    """Prepare, submit, wait for and ingest a Claude batch; False when the list goes the one-run way."""
    lexicon = _code_location_lexicon()
    if not isinstance(lexicon, ClaudeLexicon):
        return False
    try:
        count = len(parse_word_list(words).words)
    except BadInputError:
        return False  # the deck run reports what is wrong with the list
    if count <= lexicon.batch_threshold:
        return False
    progress(f"{count} words, above the Claude batch threshold ({lexicon.batch_threshold}): Message Batches")
    runs.run("batch", "claude_batch_job", word_list_partitions, job)
    prepared = manifest_for(paths, stage_dirs.CLAUDE_BATCH_REQUESTS, job)
    if prepared.status != "success":
        progress(f"no batch: {prepared.details.get('skipped_reason', '')}")
        return False
    if submitted_batch(paths, job) is None:
        raise PipelineError(f"{stage_dirs.CLAUDE_BATCH.dir_name} for {job} recorded no batch")
    poll, wait = _env_seconds(BATCH_POLL_ENV, 60.0), _env_seconds(BATCH_WAIT_ENV, 25 * 3600.0)
    deadline = time.monotonic() + wait
    # the submitted batch, then each follow-up batch an ingestion submits for failed items
    while (polled := poll_batch(paths, job, lexicon.claude)).state not in ("none", "ingested"):
        if polled.state == "unavailable":
            raise PipelineError(f"Claude batch {polled.batch_id}: {polled.error}")
        if polled.state == "running":
            if time.monotonic() >= deadline:
                raise PipelineError(
                    f"Claude batch {polled.batch_id} is still {polled.status} after {wait:g}s: rerun this command "
                    "later (it resumes the same batch), or let claude_batch_sensor ingest it under the daemon")
            progress(f"batch {polled.batch_id}: {polled.status} {polled.counts}")
            time.sleep(poll)
            continue
        progress(f"{polled.what} {polled.batch_id}: ended; ingest, analyse, speak, build")
        runs.run("ingest", "claude_batch_ingest_job", word_list_partitions, job)
        if awaited_batch(paths, job) == (polled.batch_id, polled.followup):
            raise PipelineError(f"the ingestion of Claude batch {polled.batch_id} recorded nothing")
    return True
