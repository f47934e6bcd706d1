"""Cues from word timings: where to cut the word stream, then timing by the frame rules.

Cutting: a cue grows word by word while its text fits in the lines allowed and it lasts at most
the maximum duration; a long pause or a sentence end closes it. When the next word does not
fit, the cue is cut at its best break (after punctuation, before a conjunction, never after an
article or preposition) and the rest carries over.

Timing: too-short cues are extended into the following silence, gaps under the minimum are
opened to it, and gaps of 3..11 frames are closed to the minimum (Netflix chaining).
"""

from __future__ import annotations

from pydantic import BaseModel

from stageflow_assets.providers.asr import Word
from stageflow_assets.subtitles.linebreak import break_score, ends_sentence, fits
from stageflow_assets.subtitles.rules import NO_SPACE_LANGUAGES, SubtitleRules

# part of the `cues` asset's code version: changing how cues are cut re-runs it
RULES_VERSION = "1"
MIN_SENTENCE_CHARS = 12


class Cue(BaseModel):
    index: int
    start: float
    end: float
    text: str


def join_words(words: list[Word], lang: str) -> str:
    if lang in NO_SPACE_LANGUAGES:
        return "".join(w.word.strip() for w in words)
    return " ".join(w.word.strip() for w in words if w.word.strip())


def _fits(words: list[Word], lang: str, rules: SubtitleRules) -> bool:
    if len(words) > 1 and words[-1].end - words[0].start > rules.max_duration_s:
        return False
    return fits(join_words(words, lang), lang, rules.line_chars(lang), rules.max_lines)


def _best_cut(words: list[Word], lang: str) -> int:
    """How many words stay in the closing cue (the rest start the next one)."""
    if len(words) == 1:
        return 1
    best_k, best = len(words), float("-inf")
    for k in range(1, len(words)):
        left, right = join_words(words[:k], lang), join_words(words[k:], lang)
        # prefer fuller cues: a little credit for every word kept
        score = break_score(left, right, lang) + 2.0 * k / len(words)
        if score > best:
            best_k, best = k, score
    return best_k


def cut(words: list[Word], lang: str, rules: SubtitleRules) -> list[list[Word]]:
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if not word.word.strip():
            continue
        if current and word.start - current[-1].end > rules.pause_split_s:
            groups.append(current)
            current = []
        if current and not _fits(current + [word], lang, rules):
            k = _best_cut(current, lang)
            groups.append(current[:k])
            current = current[k:]
            if current and not _fits(current + [word], lang, rules):
                groups.append(current)
                current = []
        current.append(word)
        text = join_words(current, lang)
        if ends_sentence(word.word) and len(text) >= MIN_SENTENCE_CHARS:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def retime(spans: list[tuple[float, float]], rules: SubtitleRules, fps: float) -> list[tuple[float, float]]:
    """Apply minimum duration, minimum gap and gap chaining, frame-accurately.

    Words shorter than a few frames can leave no room for a cue and its gap; the next cue's
    start then moves later, so times stay monotonic and gaps never fall under the minimum.
    """
    frame = 1.0 / fps
    min_gap = rules.min_gap_frames * frame
    out: list[tuple[float, float]] = []
    for i, (start, end) in enumerate(spans):
        if out:
            start = max(start, out[-1][1] + min_gap)
        end = max(end, start + frame)
        nxt = spans[i + 1][0] if i + 1 < len(spans) else None
        limit = nxt - min_gap if nxt is not None else float("inf")
        if end - start < rules.min_duration_s:
            end = min(start + rules.min_duration_s, max(limit, end))
        end = min(end, start + rules.max_duration_s)
        if nxt is not None and not rules.gap_ok((nxt - end) * fps):
            end = max(limit, start + frame)
        out.append((start, end))
    return [(round(s, 3), round(e, 3)) for s, e in out]


def build_cues(words: list[Word], lang: str, rules: SubtitleRules, fps: float) -> list[Cue]:
    groups = cut(words, lang, rules)
    spans = retime([(g[0].start, g[-1].end) for g in groups], rules, fps)
    return [
        Cue(index=n, start=s, end=e, text=join_words(g, lang))
        for n, (g, (s, e)) in enumerate(zip(groups, spans), start=1)
    ]
