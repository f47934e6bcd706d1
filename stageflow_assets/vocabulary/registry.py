"""Registered word lists: which file and deck settings a `word_lists` partition key stands for."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.keys import KEY_PATTERN, slug
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.job_records import read_record, write_record
from stageflow_assets.vocabulary.models import VocabJob
from stageflow_assets.vocabulary.stage_dirs import DOMAIN

def deck_key(deck: str) -> str:
    """`<deck slug>-<8 hex of the exact name>`: `Spanish::Food` and `Spanish Food` stay apart."""
    key = f"{slug(deck, max_len=48, fallback='deck')}-{hashlib.sha256(deck.encode('utf-8')).hexdigest()[:8]}"
    assert KEY_PATTERN.match(key), key
    return key


def register_word_list(paths: StagePaths, source: Path, deck: str, language: str = "en",
                       native: str | None = None, reverse: bool = False) -> VocabJob:
    """Record `source` as the list the deck is built from (the same deck name, the same key)."""
    source = source.expanduser().resolve()
    if not source.is_file():
        raise BadInputError(f"{source}: no such file", input=str(source))
    deck = " ".join(deck.split())
    if not deck or any(part.strip() == "" for part in deck.split("::")):
        raise BadInputError(f"{deck!r} is not a deck name (use e.g. 'Spanish::Food')", deck=deck)
    record = VocabJob(
        job=deck_key(deck), deck=deck, source_path=str(source), original_name=source.name,
        language=language.lower(), native=native.lower() if native else None, reverse=reverse,
        registered_at=datetime.now(timezone.utc),
    )
    write_record(paths, DOMAIN, record.job, record)
    return record


def load_word_list_job(paths: StagePaths, job: str) -> VocabJob:
    return read_record(paths, DOMAIN, job, VocabJob, f"word list {job} is not registered: run "
                       "`stageflow vocab WORDS --deck NAME` or drop the list into the words inbox")
