"""Laying each language's text onto the source timing within the hard rules, whatever its length.

Every language is translated cue by cue onto the source cues, and a translation can run longer
than its source. A cue whose text does not fit its lines is split at its best breaks
(`break_score`, plus balance) into consecutive cues timed in proportion to their graphemes,
chained by the minimum gap. When the pieces would be shorter than the minimum duration the cue
borrows time from the silence beside it (after it first, leaving a gap of exactly the minimum
or one beyond the chaining range), then from the cue before it (which ends earlier, still
within the rules), and failing that it is laid out together with its neighbours (at most
`MAX_BLOCK_CUES` source cues holding `MAX_BLOCK_LINES` full lines). Cues that fit and are timed
within the rules keep their times. Empty translations are dropped: their time becomes silence.

When nothing meets the rules (a word longer than a line; a long text in a short window between
two cues, at the video's end), the least bad layout keeps the lines within the limits and lets
the cues run shorter than the minimum (down to a frame each; past that, fewer cues with
overflowing lines): QC reports those cues as hard violations, and `unfit` names them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, Field

from stageflow_assets.subtitles.linebreak import graphemes
from stageflow_assets.subtitles.pieces import TextPieces, tokenize
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.subtitles.segmenter import Cue

# how much is laid out together at most: enough to absorb a run of one-word cues
MAX_BLOCK_CUES, MAX_BLOCK_LINES = 12, 8


class FittedCue(Cue):
    sources: list[int] = Field(description="indexes of the source cues whose text it carries")


class Fitting(BaseModel):
    cues: list[FittedCue]
    resplit: int = 0  # source cues split into several cues
    retimed: int = 0  # source cues given time from the silence beside them
    reflowed: int = 0  # source cues laid out together with their neighbours
    dropped: int = 0  # source cues with an empty text
    unfit: list[int] = Field(default_factory=list)  # source cues the rules could not be met for

    def summary(self) -> dict:
        return {"cues": len(self.cues), "resplit": self.resplit, "retimed": self.retimed,
                "reflowed": self.reflowed, "dropped_empty": self.dropped, "unfit": len(self.unfit)}


@dataclass
class _Block:
    """Source cues `first..last` laid out as pieces (start ms, end ms, text, source indexes)."""

    first: int
    last: int
    texts: list[tuple[str, list[int]]]
    pieces: list[tuple[int, int, str, list[int]]]
    need: int = 0  # the shortest span its pieces fit in
    extended: bool = False
    unfit: bool = False

    @property
    def start(self) -> int:
        return self.pieces[0][0]

    @property
    def end(self) -> int:
        return self.pieces[-1][1]


def durations(weights: list[int], total: int, low: int, high: int) -> list[int]:
    """Whole milliseconds in proportion to `weights`, each within [low, high], summing to `total`
    (k * low <= total <= k * high): the scale at which the clamped shares add up, then rounded."""
    w = [max(x, 1) for x in weights]

    def shares(scale: float) -> list[float]:
        return [min(max(scale * x, low), high) for x in w]

    below, above = 0.0, high / min(w)
    for _ in range(100):
        middle = (below + above) / 2
        below, above = (middle, above) if sum(shares(middle)) < total else (below, middle)
    share = shares(above)
    whole = [min(int(math.floor(x + 1e-9)), high) for x in share]
    order = sorted(range(len(w)), key=lambda p: share[p] - whole[p], reverse=True)
    for p in [p for p in order if whole[p] < high][:max(total - sum(whole), 0)]:
        whole[p] += 1
    return whole


class _Fitter:
    def __init__(self, cues: list[Cue], texts: list[str], lang: str, rules: SubtitleRules, fps: float,
                 video_end: float | None):
        self.lang, self.rules = lang, rules
        self.gap = round(rules.min_gap_frames * 1000 / fps)
        self.apart = math.ceil((rules.chain_gap_frames + 1) * 1000 / fps)  # the shortest unchained gap
        self.frame = max(round(1000 / fps), 1)
        self.min, self.max = round(rules.min_duration_s * 1000), math.floor(rules.max_duration_s * 1000)
        items = [(c.index, round(c.start * 1000), round(c.end * 1000), tokenize(t, lang)) for c, t in zip(cues, texts)]
        self.items = [item for item in items if item[3]]
        self.dropped = len(items) - len(self.items)
        self.chars = [sum(graphemes(t) + 1 for t in item[3]) for item in self.items]
        self.video_end = round(video_end * 1000) if video_end else None
        self.cache: dict[str, bool] = {}

    def text(self, first: int, last: int) -> TextPieces:
        tokens, owners = [], []
        for index, _, _, words in self.items[first:last + 1]:
            tokens += words
            owners += [index] * len(words)
        return TextPieces(tokens, owners, self.lang, self.rules.line_chars(self.lang), self.rules.max_lines, self.cache)

    def bounds(self, first: int, last: int, prev_end: int | None):
        """The block's own window (chained to its neighbours) and how far it may grow."""
        a, b = self.items[first][1], self.items[last][2]
        low = 0 if prev_end is None else prev_end + self.gap
        if prev_end is not None and a - prev_end < self.apart:
            a = low
        nxt = self.items[last + 1][1] if last + 1 < len(self.items) else None
        high = nxt - self.gap if nxt is not None else self.video_end
        if high is not None:
            b = min(b, high)
            if nxt is not None and nxt - b < self.apart:
                b = high
        return a, max(b, a), low, high, nxt, prev_end

    def window(self, k: int, a: int, b: int, low: int, high: int | None, nxt: int | None, prev_end: int | None):
        need, cap = k * self.min + (k - 1) * self.gap, k * self.max + (k - 1) * self.gap
        if b - a > cap:
            b = a + cap
            if nxt is not None and nxt - b < self.apart:
                b = nxt - self.apart
            return (a, b) if b - a >= need else None
        short = need - (b - a)
        if short > 0 and high is None:
            b, short = b + short, 0
        elif short > 0 and (nxt is None or b + short <= nxt - self.apart):
            grow = min(short, high - b)
            b, short = b + grow, short - grow
        elif short > 0:
            b, short = high, short - (high - b)
        if short > 0 and (prev_end is None or a - short >= prev_end + self.apart):
            grow = min(short, a - low)
            a, short = a - grow, short - grow
        elif short > 0:
            a, short = low, short - (a - low)
        return (a, b) if short <= 0 and b - a <= cap else None

    def lay(self, pieces, a: int, b: int, low: int) -> list[tuple[int, int, str, list[int]]]:
        k = len(pieces)
        total = max(b - a - (k - 1) * self.gap, k)
        lengths = durations([graphemes(t) for t, _ in pieces], total, min(low, total // k), self.max)
        out, t = [], a
        for (text, sources), d in zip(pieces, lengths):
            out.append((t, t + d, text, sources))
            t += d + self.gap
        return out

    def place(self, first: int, last: int, prev_end: int | None) -> _Block | None:
        a, b, low, high, nxt, prev = self.bounds(first, last, prev_end)
        text = self.text(first, last)
        k = text.fewest()
        if k is None:
            return None
        for k in range(k, len(text.tokens) + 1):
            need = k * self.min + (k - 1) * self.gap
            span = self.window(k, a, b, low, high, nxt, prev)
            if span is not None:
                texts = text.split(k)
                return _Block(first, last, texts, self.lay(texts, *span, self.min), need, span != (a, b))
            if b - a <= k * self.max + (k - 1) * self.gap:  # too short: more pieces need more time
                return None
        return None

    def least_bad(self, i: int, prev_end: int | None) -> _Block:
        a, b, low, high, nxt, prev = self.bounds(i, i, prev_end)
        text = self.text(i, i)
        k = text.fewest(overflow=True) or 1
        span = self.window(k, a, b, low, high, nxt, prev)
        if span is None:
            a, b = low, high if high is not None else b
            k = max(1, min(k, (b - a + self.gap) // (self.frame + self.gap)))
            span = (a, max(b, a + k * (self.frame + self.gap)))
        texts = text.split(k, overflow=True)
        return _Block(i, i, texts, self.lay(texts, *span, self.min), extended=True, unfit=True)

    def joinable(self, first: int, last: int) -> bool:
        if last - first >= MAX_BLOCK_CUES:
            return False
        return sum(self.chars[first:last + 1]) <= MAX_BLOCK_LINES * (self.rules.line_chars(self.lang) + 1)

    def forward(self, first: int, must: int, prev_end: int | None) -> _Block | None:
        for last in range(must, len(self.items)):
            if not self.joinable(first, last):
                return None
            block = self.place(first, last, prev_end)
            if block is not None:
                return block
        return None

    def squeeze(self, blocks: list[_Block], i: int) -> _Block | None:
        """Cue `i` placed with time the previous block can spare (it ends earlier, its pieces
        shorter but within the rules): the latest end of that block that leaves cue `i` room."""
        prev = blocks[-1]
        low, high = prev.start + prev.need, prev.end
        block = self.forward(i, i, low) if low < high else None
        if block is None:
            return None
        while high - low > 1:
            middle = (low + high) // 2
            trial = self.forward(i, i, middle)
            low, high, block = (middle, high, trial) if trial is not None else (low, middle, block)
        blocks[-1] = _Block(prev.first, prev.last, prev.texts, self.lay(prev.texts, prev.start, low, self.min),
                            prev.need, extended=True)
        return block

    def run(self) -> list[_Block]:
        blocks: list[_Block] = []
        i = 0
        while i < len(self.items):
            block = self.forward(i, i, blocks[-1].end if blocks else None)
            if block is None and blocks and not blocks[-1].unfit:
                block = self.squeeze(blocks, i)
            popped: list[_Block] = []
            while block is None and blocks and not blocks[-1].unfit and self.joinable(blocks[-1].first, i):
                popped.append(blocks.pop())  # lay the cues before out again together with it
                block = self.forward(popped[-1].first, i, blocks[-1].end if blocks else None)
            if block is None:
                blocks.extend(reversed(popped))
                block = self.least_bad(i, blocks[-1].end if blocks else None)
            blocks.append(block)
            i = block.last + 1
        return blocks


def fit_translation(cues: list[Cue], texts: list[str], lang: str, rules: SubtitleRules, fps: float,
                    video_end: float | None = None) -> Fitting:
    """Cues carrying `texts` (one per source cue, in order) on the source timing, within the rules."""
    fitter = _Fitter(cues, texts, lang, rules, fps, video_end)
    result = Fitting(cues=[], dropped=fitter.dropped)
    for block in fitter.run():
        indexes = [item[0] for item in fitter.items[block.first:block.last + 1]]
        if block.unfit:
            result.unfit += indexes
        elif len(indexes) > 1:
            result.reflowed += len(indexes)
        else:
            result.resplit += len(block.pieces) > 1
            result.retimed += block.extended
        for start, end, text, sources in block.pieces:
            result.cues.append(FittedCue(index=len(result.cues) + 1, start=start / 1000, end=end / 1000,
                                         text=text, sources=sources))
    return result
