"""The files the vocabulary stages exchange (each a pydantic model written as JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from stageflow_assets.providers.anki_merge import BaseNote
from stageflow_assets.providers.lexicon import Sense

PartOfSpeech = Literal["noun", "verb", "adjective", "adverb"]


class VocabJob(BaseModel):
    """What a `word_lists` partition key stands for: one deck built from one list."""

    job: str
    deck: str
    source_path: str
    original_name: str
    language: str = "en"
    native: str | None = None
    reverse: bool = False
    registered_at: datetime


class WordEntry(BaseModel):
    line: int = Field(description="line (text, CSV) or item number (JSON) in the source list")
    headword: str
    pos_hint: PartOfSpeech | None = None
    tags: list[str] = Field(default_factory=list)
    note: str = ""


class BadLine(BaseModel):
    line: int
    reason: str
    text: str = Field(description="the offending line, cut to 80 characters")


class Duplicate(BaseModel):
    line: int
    headword: str
    first_line: int
    kept: str


class WordListDoc(BaseModel):
    """`words.json`: the normalised, deduplicated list and what was left out and why."""

    source_name: str
    format: Literal["text", "csv", "json"]
    words: list[WordEntry]
    bad_lines: list[BadLine] = Field(default_factory=list)
    duplicates: list[Duplicate] = Field(default_factory=list)
    blank_or_comment_lines: int = 0


class WordAnalysis(BaseModel):
    key: str = Field(description="the note GUID: identity = language + headword + POS hint")
    headword: str
    line: int
    pos_hint: PartOfSpeech | None = None
    part_of_speech: str = ""
    lemma: str = ""
    lookup_form: str = Field("", description="the word after a marker, looked up, transcribed and spoken "
                             "(`to borrow` → `borrow`); empty: the headword itself (vocabulary/headwords.py)")
    senses: list[Sense] = Field(default_factory=list)
    ipa: str = ""
    ipa_valid: bool = False
    translation: str = ""
    tags: list[str] = Field(default_factory=list)
    note: str = ""
    issues: list[str] = Field(default_factory=list)


class AnalysisDoc(BaseModel):
    """`analysis.json`: one row per headword of the list, known or not."""

    language: str
    native: str | None = None
    lexicon: str
    translation_backend: str | None = None
    words: list[WordAnalysis]


class AudioItem(BaseModel):
    key: str
    headword: str
    file: str | None = Field(None, description="media basename in this stage dir")
    issue: str = ""


class AudioDoc(BaseModel):
    language: str
    voice: str
    items: list[AudioItem]


class ImageItem(BaseModel):
    key: str
    headword: str
    file: str | None = None
    issue: str = ""


class ImageDoc(BaseModel):
    enabled: bool
    backend: str
    items: list[ImageItem] = Field(default_factory=list)


class NoteRow(BaseModel):
    guid: str
    headword: str
    fields: dict[str, str]
    tags: list[str]
    content_hash: str
    mod: int = Field(description="seconds; moves only when content_hash changes")


class DeckDoc(BaseModel):
    """`notes.json` beside the `.apkg`: what went into it, and each note's `mod` for next time."""

    deck: str
    deck_id: int
    model_id: int
    model_name: str
    reverse: bool
    notes: list[NoteRow]
    media: list[str]


class SyncState(BaseModel):
    """`sync_state.json` beside the sync report: the three-way merge's base. Per Anki synced into
    (`ankiconnect <url>` or `collection <path>`), by note key, what the pipeline last wrote."""

    targets: dict[str, dict[str, BaseNote]] = Field(default_factory=dict)
