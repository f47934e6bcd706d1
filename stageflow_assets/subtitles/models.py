"""Files the language stages exchange."""

from __future__ import annotations

from pydantic import BaseModel, Field

from stageflow_assets.subtitles.cues import Cue


class TranslatedCue(Cue):
    source: str


class TranslationDoc(BaseModel):
    """`translation.json`: one translated cue per source cue, same index and timing."""

    source_language: str
    target_language: str
    backend: str
    cues: list[TranslatedCue]
    unknown_words: list[str] = Field(default_factory=list)
