"""Cues from ASR segments: split long segments at word boundaries, wrap lines for display."""

from __future__ import annotations

import textwrap

from pydantic import BaseModel

from stageflow_assets.providers.asr import Segment, Transcript, Word

MAX_CUE_CHARS = 84  # two lines of 42
MAX_CUE_SECONDS = 7.0
LINE_WIDTH = 42
MAX_LINES = 2


class Cue(BaseModel):
    index: int
    start: float
    end: float
    text: str


def _chunks(segment: Segment) -> list[list[Word]]:
    chunks: list[list[Word]] = [[]]
    for word in segment.words:
        current = chunks[-1]
        text = "".join(w.word for w in current + [word]).strip()
        too_long = current and (
            len(text) > MAX_CUE_CHARS or word.end - current[0].start > MAX_CUE_SECONDS
        )
        if too_long:
            chunks.append([word])
        else:
            current.append(word)
    return [c for c in chunks if c]


def cues_from_transcript(transcript: Transcript) -> list[Cue]:
    cues: list[Cue] = []
    for segment in transcript.segments:
        if not segment.words:
            if segment.text.strip():
                cues.append(Cue(index=len(cues) + 1, start=segment.start, end=segment.end,
                                text=segment.text.strip()))
            continue
        for chunk in _chunks(segment):
            text = "".join(w.word for w in chunk).strip()
            if text:
                cues.append(Cue(index=len(cues) + 1, start=chunk[0].start, end=chunk[-1].end, text=text))
    return cues


def wrap(text: str) -> list[str]:
    """At most two lines of 42 characters where the text allows; never drops words."""
    lines = textwrap.wrap(text, LINE_WIDTH) or [""]
    if len(lines) <= MAX_LINES:
        return lines
    half = (len(text) + 1) // 2
    split = text.rfind(" ", 0, half + 1)
    split = split if split > 0 else text.find(" ", half)
    return [text[:split].strip(), text[split:].strip()] if split > 0 else [text]
