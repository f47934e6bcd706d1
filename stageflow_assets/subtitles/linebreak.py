"""Breaking a cue's text into at most two lines the way subtitlers do.

Keep one line when it fits; otherwise break after punctuation or before a conjunction, never
after an article or preposition (so article + noun stay together), and keep the lines close in
length. Lengths count graphemes, spaces and punctuation included.
"""

from __future__ import annotations

import textwrap

import regex

from stageflow_assets.subtitles.rules import NO_SPACE_LANGUAGES, clinging, conjunctions

SENTENCE_END = (".", "?", "!", "…")
# a full stop that does not end a sentence
ABBREVIATIONS = frozenset("mr. mrs. ms. dr. st. sr. jr. prof. vs. etc. e.g. i.e. sra. srta. dña. núm.".split())
_WORD = regex.compile(r"[\p{L}\p{N}'’]+")


def graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


def bare(word: str) -> str:
    match = _WORD.search(word.lower())
    return match.group(0) if match else ""


def ends_sentence(word: str) -> bool:
    word = word.strip()
    if not word.endswith(SENTENCE_END) or word.lower() in ABBREVIATIONS:
        return False
    return not (len(word) == 2 and word[0].isupper())  # an initial: "J."


def break_score(left: str, right: str, lang: str) -> float:
    """How good a break between `left` and `right` is (higher is better)."""
    last, first = left.split()[-1], right.split()[0]
    score = 0.0
    if ends_sentence(last) or last.endswith((":", ";")):
        score += 3
    elif last.endswith((",", "—", "-")):
        score += 2
    if bare(first) in conjunctions(lang):
        score += 1.5
    if bare(last) in clinging(lang) or last.endswith(("'", "’")):
        score -= 4
    return score


def break_lines(text: str, lang: str, width: int, max_lines: int = 2) -> list[str]:
    text = " ".join(text.split())
    if graphemes(text) <= width:
        return [text]
    if lang in NO_SPACE_LANGUAGES:
        chars = regex.findall(r"\X", text)
        return ["".join(chars[i:i + width]) for i in range(0, len(chars), width)]
    words = text.split(" ")
    best: tuple[float, list[str]] | None = None
    for k in range(1, len(words)):
        left, right = " ".join(words[:k]), " ".join(words[k:])
        a, b = graphemes(left), graphemes(right)
        if a > width or b > width:
            continue
        balance = abs(a - b) / max(a + b, 1)
        score = break_score(left, right, lang) - 4 * balance
        if best is None or score > best[0]:
            best = (score, [left, right])
    if best is not None and max_lines >= 2:
        return best[1]
    return textwrap.wrap(text, width, break_long_words=False) or [text]


def fits(text: str, lang: str, width: int, max_lines: int) -> bool:
    lines = break_lines(text, lang, width, max_lines)
    return len(lines) <= max_lines and all(graphemes(l) <= width for l in lines)
