"""Cues from ASR segments: split long segments at word boundaries, wrap lines for display.

A first cut: cues end at sentence ends where they can, stay under 70 source characters (room
for translations that run longer) and 7 seconds, and a short tail joins the cue before it.
"""

from __future__ import annotations

import textwrap

from pydantic import BaseModel

from stageflow_assets.providers.asr import Transcript, Word

# part of the translation stage's code version: changing the rules re-runs translation
CUE_RULES_VERSION = "2"
MAX_CUE_CHARS = 70
MAX_CUE_SECONDS = 7.0
MIN_TAIL_CHARS = 16
PAUSE_SECONDS = 1.5
LINE_WIDTH = 42
MAX_LINES = 2
SENTENCE_END = (".", "?", "!", "…")


class Cue(BaseModel):
    index: int
    start: float
    end: float
    text: str


def _text(words: list[Word]) -> str:
    return "".join(w.word for w in words).strip()


def _chunks(words: list[Word]) -> list[list[Word]]:
    chunks: list[list[Word]] = [[]]
    for word in words:
        current = chunks[-1]
        full = current and (
            len(_text(current + [word])) > MAX_CUE_CHARS
            or word.end - current[0].start > MAX_CUE_SECONDS
            or word.start - current[-1].end > PAUSE_SECONDS
        )
        if full:
            chunks.append([word])
            continue
        current.append(word)
        if word.word.strip().endswith(SENTENCE_END) and len(_text(current)) >= MIN_TAIL_CHARS:
            chunks.append([])
    chunks = [c for c in chunks if c]
    if len(chunks) > 1 and len(_text(chunks[-1])) < MIN_TAIL_CHARS:
        merged = chunks[-2] + chunks[-1]
        fits = merged[-1].end - merged[0].start <= MAX_CUE_SECONDS
        if fits and len(_text(merged)) <= MAX_CUE_CHARS + MIN_TAIL_CHARS:
            chunks[-2:] = [merged]
    return chunks


def cues_from_transcript(transcript: Transcript) -> list[Cue]:
    """Cues over the whole word stream (segment ends are not sentence ends)."""
    if any(not s.words for s in transcript.segments):
        spans = [(s.start, s.end, s.text.strip()) for s in transcript.segments]
    else:
        words = [w for s in transcript.segments for w in s.words]
        spans = [(g[0].start, g[-1].end, _text(g)) for g in _chunks(words)]
    return [
        Cue(index=n, start=start, end=end, text=text)
        for n, (start, end, text) in enumerate((sp for sp in spans if sp[2]), start=1)
    ]


def wrap(text: str) -> list[str]:
    """Lines of at most 42 characters, balanced into two where the text fits in two."""
    lines = textwrap.wrap(text, LINE_WIDTH) or [""]
    if len(lines) != 2:
        return lines
    balanced = textwrap.wrap(text, max(len(text) // 2 + 1, max(len(w) for w in text.split())))
    return balanced if len(balanced) == 2 and all(len(l) <= LINE_WIDTH for l in balanced) else lines
