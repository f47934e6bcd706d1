"""Files the subtitle stages exchange."""

from __future__ import annotations

from pydantic import BaseModel, Field

from stageflow_assets.subtitles.segmenter import Cue


class CueDoc(BaseModel):
    """`cues.json`: the spoken language's cues with their final timing."""

    language: str
    fps: float
    cues: list[Cue]


class TranslatedCue(Cue):
    source: str


class TranslationDoc(BaseModel):
    """`translation.json`: one translated cue per source cue, same index and timing."""

    source_language: str
    target_language: str
    backend: str
    fps: float
    cues: list[TranslatedCue]
    unknown_words: list[str] = Field(default_factory=list)
    glossary_missing: dict[int, list[str]] = Field(default_factory=dict)
