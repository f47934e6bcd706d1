"""How the journey safety checks read text: normalisation and the compiled term patterns.

The rules are described in `safety.py`; the lists and their per-entry options in `safety_terms.py`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from stageflow_assets.journey.safety_terms import ANY, HEAD, Term

_LOOKALIKE_LETTERS = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "α": "a", "ε": "e", "ι": "i", "κ": "k",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
}
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@lru_cache(maxsize=8192)
def _fold(char: str) -> str:
    """One character as the patterns see it (possibly several characters, or none)."""
    if char.isspace():
        return "\n" if char in _LINE_BREAKS else " "
    if unicodedata.category(char) == "Cf":          # zero-width space, soft hyphen, joiners
        return ""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", char).casefold())
    kept = (_LOOKALIKE_LETTERS.get(c, c) for c in decomposed if not unicodedata.combining(c))
    return "".join(kept).replace("_", "-")


def normalise(text: str) -> str:
    """`text` as the checks see it: case-folded, without diacritics, zero-width characters or look-alike scripts."""
    return Normalised(text).text


class Normalised:
    """The folded text plus, for each of its characters, where it came from in the original.

    A letter repeated more than twice is kept twice ("Siiiieg" → "siieg"): the patterns allow each
    letter once or twice, and bounded repeats keep a pathological text from making the scan slow."""

    def __init__(self, original: str) -> None:
        kept: list[str] = []
        origin: list[int] = []
        for index, char in enumerate(original):
            for folded in _fold(char):
                if folded.isalpha() and len(kept) >= 2 and kept[-1] == kept[-2] == folded:
                    continue
                kept.append(folded)
                origin.append(index)
        self.original = original
        self.text = "".join(kept)
        self.origin = origin

    def found(self, start: int, end: int) -> str:
        """The original text behind the folded span [start, end)."""
        return self.original[self.origin[start]:self.origin[end - 1] + 1]


_LOOKALIKE_SIGNS = {"a": "a4@", "e": "e3", "i": "i1!|", "l": "l1|", "o": "o0", "s": "s5$", "t": "t7+"}
_UMLAUTS = {"ä": "a", "ö": "o", "ü": "u"}
_IN_WORD = r"[^\w\s]{0,2}"
_BETWEEN_WORDS = r"\W{0,3}"
_SPACED_OUT = r"\W{1,3}"
# English takes no -er: it makes other words ("killer whale", "bomber jacket", "gunner")
_ENDINGS = {"de": "(?:e|en|em|er|es|n|s)", "en": "(?:s|es|d|ed|ing)"}


def _letter(char: str) -> str:
    signs = _LOOKALIKE_SIGNS.get(char, char)
    return re.escape(signs) if len(signs) == 1 else "[" + "".join(re.escape(s) for s in signs) + "]"


def _units(word: str) -> list[tuple[str, bool]]:
    """(pattern, optional) per letter: ä is a + optional e (ä/ae/a), ß is s + optional s (ß/ss/s)."""
    units: list[tuple[str, bool]] = []
    for char in word.lower():
        if char in _UMLAUTS:
            units += [(_letter(_UMLAUTS[char]), False), (_letter("e"), True)]
        elif char == "ß":
            units += [(_letter("s"), False), (_letter("s"), True)]
        else:
            units.append((_letter(char), False))
    return units


def _word(units: list[tuple[str, bool]], gap: str, repeat: str) -> str:
    head, *rest = units
    return head[0] + repeat + "".join(f"(?:{gap}{u}{repeat})?" if optional else f"{gap}{u}{repeat}"
                                      for u, optional in rest)


def _spellings(term: Term, spaced_out: bool) -> str:
    """The entry as a pattern, without its word-start check: compact ("S.i.e.g-Heil", "siegheil")
    or spaced out ("S i e g H e i l")."""
    variants = []
    for spelling in term.spellings:
        words = [_units(w) for w in re.findall(r"\w+", spelling)]
        if not spaced_out:
            variants.append(_BETWEEN_WORDS.join(_word(w, _IN_WORD, "{1,2}") for w in words))
        elif sum(len(w) for w in words) >= 4:
            variants.append(_SPACED_OUT.join(_word(w, _SPACED_OUT, "") for w in words))
    if not variants:
        return ""
    ending = _ENDINGS[term.language] + "?" if term.inflect else ""
    end = r"\w*" if term.compound in (HEAD, ANY) else r"(?!\w)"
    return f"(?:{'|'.join(variants)}){ending}{end}"


_WORD_START = r"(?<!\w)"


class _Patterns:
    """One variant (compact or spaced out) of a list: a scanner over all entries, and each entry alone.

    The scanner has no groups and one shared word-start check (either per entry makes the scan
    several times slower); where it hits, the single entries are tried there to name what matched."""

    def __init__(self, terms: tuple[Term, ...], spaced_out: bool) -> None:
        bodies = [(term, body) for term in terms if (body := _spellings(term, spaced_out))]
        self.single = [(term, re.compile(("" if term.compound == ANY else _WORD_START) + body))
                       for term, body in bodies]
        at_word_start = "|".join(body for term, body in bodies if term.compound != ANY)
        anywhere = "|".join(body for term, body in bodies if term.compound == ANY)
        parts = [f"{_WORD_START}(?:{at_word_start})" if at_word_start else "", anywhere]
        self.scanner = re.compile("|".join(p for p in parts if p) or "(?!)")

    def spans(self, text: str) -> list[tuple[Term, int, int]]:
        hits: list[tuple[Term, int, int]] = []
        position = 0
        while hit := self.scanner.search(text, position):
            for term, pattern in self.single:
                if m := pattern.match(text, hit.start()):
                    hits.append((term, m.start(), m.end()))
            position = hit.start() + 1                     # overlapping entries: "Sieg Heil Hitler"
        return hits


# a run of four or more single characters with gaps between them, as in "S i e g  H e i l"
_SPACED_RUN = re.compile(r"(?<!\w)\w(?:\W{1,3}\w(?!\w)){3,}")


class TermMatcher:
    """The entries of some lists, compiled once."""

    def __init__(self, terms: tuple[Term, ...]) -> None:
        self.compact = _Patterns(terms, spaced_out=False)
        self.spaced_out = _Patterns(terms, spaced_out=True)

    def spans(self, normalised: Normalised) -> list[tuple[Term, int, int]]:
        """(entry, start, end) in the normalised text; an entry once per stretch of text."""
        text = normalised.text
        found = self.compact.spans(text)
        if _SPACED_RUN.search(text):
            found += self.spaced_out.spans(text)
        hits: list[tuple[Term, int, int]] = []
        for term, start, end in found:
            if not any(t is term and s < end and start < e for t, s, e in hits):
                hits.append((term, start, end))
        return hits
