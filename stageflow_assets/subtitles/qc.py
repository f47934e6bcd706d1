"""Subtitle quality control: every rule's violations, naming the offending cues.

The subtitles stage records the counts in its metadata; the asset checks report them, ERROR
(blocking the mux) for unusable files, WARN for quality signals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from stageflow_assets.subtitles.linebreak import graphemes
from stageflow_assets.subtitles.rules import SubtitleRules

# severities: ERROR rules are the hard rules every language must meet (an unusable file, or a
# cue no viewer can read: too many or too long lines, too short or too long on screen);
# WARN rules are what a QC reviewer flags
ERROR_RULES = ("overlap", "non_monotonic", "empty", "line_length", "line_count", "duration")
WARN_RULES = (
    "reading_speed", "frame_gap", "unknown_words", "repeated_ngrams", "phantom_phrases", "glossary",
)
PHANTOM_PHRASES = (
    "thank you for watching", "thanks for watching", "please subscribe",
    "subtitles by the amara.org community", "subtitles by", "like and subscribe",
)


@dataclass(frozen=True)
class QcCue:
    index: int
    start: float
    end: float
    lines: list[str]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def _repeats(words: list[str], max_n: int = 4, times: int = 3) -> str | None:
    """An n-gram repeated `times` times in a row (Whisper's loop hallucination)."""
    for n in range(1, max_n + 1):
        for i in range(0, len(words) - n * times + 1):
            gram = words[i:i + n]
            if all(words[i + k * n:i + (k + 1) * n] == gram for k in range(times)):
                return " ".join(gram)
    return None


def violations(
    cues: list[QcCue], lang: str, rules: SubtitleRules, fps: float,
    unknown_words: list[str] | None = None, missing_terms: dict[int, list[str]] | None = None,
) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {rule: [] for rule in ERROR_RULES + WARN_RULES}
    width, cps = rules.line_chars(lang), rules.cps(lang)
    for i, cue in enumerate(cues):
        duration = cue.end - cue.start
        if not cue.text.strip():
            found["empty"].append({"cue": cue.index})
        if duration <= 0:
            found["non_monotonic"].append({"cue": cue.index, "start": cue.start, "end": cue.end})
        if i and cue.start < cues[i - 1].start:
            found["non_monotonic"].append({"cue": cue.index, "start": cue.start, "previous_start": cues[i - 1].start})
        if i and cue.start < cues[i - 1].end:
            found["overlap"].append({"cue": cue.index, "start": cue.start, "previous_end": cues[i - 1].end})
        long_lines = [l for l in cue.lines if graphemes(l) > width]
        if long_lines:
            found["line_length"].append({"cue": cue.index, "chars": max(graphemes(l) for l in long_lines), "limit": width})
        if len(cue.lines) > rules.max_lines:
            found["line_count"].append({"cue": cue.index, "lines": len(cue.lines)})
        if duration > 0 and not (rules.min_duration_s - 1e-3 <= duration <= rules.max_duration_s + 1e-3):
            found["duration"].append({"cue": cue.index, "seconds": round(duration, 3)})
        chars = sum(graphemes(l) for l in cue.lines) + max(len(cue.lines) - 1, 0)
        if duration > 0 and chars / duration > cps:
            found["reading_speed"].append({"cue": cue.index, "cps": round(chars / duration, 1), "limit": cps})
        if i + 1 < len(cues):
            gap = round((cues[i + 1].start - cue.end) * fps, 3)
            if gap >= 0 and not rules.gap_ok(gap):
                found["frame_gap"].append({"cue": cue.index, "gap_frames": gap})
        lowered = cue.text.lower().strip(" .!?")
        if any(lowered == p or lowered.startswith(p) for p in PHANTOM_PHRASES):
            found["phantom_phrases"].append({"cue": cue.index, "text": cue.text})
    words = " ".join(c.text.lower() for c in cues).split()
    repeated = _repeats(words)
    if repeated:
        found["repeated_ngrams"].append({"ngram": repeated})
    texts = Counter(c.text.strip().lower() for c in cues if c.text.strip())
    for text, count in texts.items():
        if count >= 3 and len(text.split()) >= 2:
            found["repeated_ngrams"].append({"cue_text": text, "times": count})
    if unknown_words:
        found["unknown_words"].append({"words": unknown_words})
    for index, terms in (missing_terms or {}).items():
        found["glossary"].append({"cue": index, "missing_terms": terms})
    return found


def counts(found: dict[str, list[dict]]) -> dict[str, int]:
    return {rule: len(items) for rule, items in found.items()}
