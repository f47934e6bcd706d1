"""A cue text cut into pieces that each fit the lines: the fewest pieces, the best breaks.

Breaks are scored as line breaks are (`break_score`: after punctuation, before a conjunction,
never after an article or preposition), with a bonus where one source cue's text ends and the
next begins, less a penalty for pieces far from the mean length (their cues are timed in
proportion to their text, so balanced pieces share the time evenly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import regex

from stageflow_assets.subtitles.linebreak import SENTENCE_END, break_score, fits, graphemes
from stageflow_assets.subtitles.rules import NO_SPACE_LANGUAGES

SOURCE_BREAK_BONUS = 2.0  # a break where a source cue ended keeps the text near its speech
BALANCE_WEIGHT = 3.0
OVERFLOW_COST = 1000.0


def tokenize(text: str, lang: str) -> list[str]:
    """Words; in languages written without spaces, graphemes (a space stays with the one before)."""
    text = " ".join(text.split())
    if lang not in NO_SPACE_LANGUAGES:
        return text.split()
    tokens: list[str] = []
    for g in regex.findall(r"\X", text):
        if g.isspace() and tokens:
            tokens[-1] += g
        elif not g.isspace():
            tokens.append(g)
    return tokens


@dataclass
class TextPieces:
    """A block's tokens and how to cut them into pieces that fit the lines."""

    tokens: list[str]
    owners: list[int]  # the source cue index of each token
    lang: str
    width: int
    max_lines: int
    cache: dict[str, bool]
    sep: str = field(init=False)
    prefix: list[int] = field(init=False)

    def __post_init__(self):
        self.sep = "" if self.lang in NO_SPACE_LANGUAGES else " "
        self.prefix = [0]
        for t in self.tokens:
            self.prefix.append(self.prefix[-1] + graphemes(t))
        self.limit = self.width * self.max_lines + len(self.sep) * (self.max_lines - 1)

    def text(self, i: int, j: int) -> str:
        return self.sep.join(self.tokens[i:j]).strip()

    def length(self, i: int, j: int) -> int:
        return self.prefix[j] - self.prefix[i] + len(self.sep) * (j - i - 1)

    def fits(self, i: int, j: int) -> bool:
        if self.length(i, j) > self.limit:
            return False
        text = self.text(i, j)
        if text not in self.cache:
            self.cache[text] = fits(text, self.lang, self.width, self.max_lines)
        return self.cache[text]

    def allowed(self, i: int, j: int, overflow: bool) -> bool:
        return overflow or self.fits(i, j) or j == i + 1

    def break_bonus(self, i: int) -> float:
        left, right = self.tokens[i - 1], self.tokens[i]
        if self.sep:
            score = break_score(left, right, self.lang)
        else:
            score = 3.0 if left.rstrip().endswith(SENTENCE_END + ("。", "！", "？")) else 0.0
        return score + (SOURCE_BREAK_BONUS if self.owners[i] != self.owners[i - 1] else 0.0)

    def fewest(self, overflow: bool = False) -> int | None:
        """The fewest pieces that fit; with `overflow`, a word too long for a line stands alone."""
        n, best = len(self.tokens), [0] + [math.inf] * len(self.tokens)
        for j in range(1, n + 1):
            i = j - 1
            while i >= 0 and (self.length(i, j) <= self.limit or i == j - 1):
                if best[i] + 1 < best[j] and (self.fits(i, j) or (overflow and i == j - 1)):
                    best[j] = best[i] + 1
                i -= 1
        return None if best[n] == math.inf else int(best[n])

    def split(self, k: int, overflow: bool = False) -> list[tuple[str, list[int]]]:
        """The best `k` pieces (text, source indexes): good breaks, balanced lengths."""
        n = len(self.tokens)
        mean = max(self.length(0, n) / k, 1.0)
        score = [[-math.inf] * (n + 1) for _ in range(k + 1)]
        back = [[0] * (n + 1) for _ in range(k + 1)]
        score[0][0] = 0.0
        for p in range(1, k + 1):
            for j in range(p, n - (k - p) + 1):
                for i in range(j - 1, p - 2, -1):
                    if not overflow and self.length(i, j) > self.limit and i < j - 1:
                        break
                    if score[p - 1][i] == -math.inf or not self.allowed(i, j, overflow):
                        continue
                    value = score[p - 1][i] - BALANCE_WEIGHT * abs(self.length(i, j) - mean) / mean
                    if i:
                        value += self.break_bonus(i)
                    if not self.fits(i, j):
                        value -= OVERFLOW_COST + max(self.length(i, j) - self.limit, 0)
                    if value > score[p][j]:
                        score[p][j], back[p][j] = value, i
        cuts, j = [], n
        for p in range(k, 0, -1):
            cuts.append((back[p][j], j))
            j = back[p][j]
        return [(self.text(i, j), sorted(set(self.owners[i:j]))) for i, j in reversed(cuts)]
