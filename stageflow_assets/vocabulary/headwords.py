"""Headwords written with a grammatical marker: `to borrow`, `an apple`, `the weather`.

Word lists often write verbs with their infinitive marker and nouns with an article, as
textbooks do. The card keeps what the learner wrote; meanings, IPA and audio are those of the
word after the marker, because that is the dictionary entry (`to borrow` is the verb
`borrow`; a dictionary transcribes and speaks `borrow`, and `to` is a weak /tə/ nobody learns).

Only a clear marker is taken off, and only when what follows is a known word of the marker's
part of speech while the whole is not itself an entry: `a lot` and `the Hague` stay as they
are, `to` before a noun hint is not a marker. `marker_split` is the pure part; the lexicon
decides "known" (analysis.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# language → marker → the part of speech it marks
MARKERS: dict[str, dict[str, str]] = {
    "en": {"to": "verb", "a": "noun", "an": "noun", "the": "noun"},
}


@dataclass(frozen=True)
class Marked:
    marker: str  # as written: `to`, `The`
    word: str  # what follows it: the word to look up, transcribe and speak
    part_of_speech: str  # what the marker says the word is


def marker_split(headword: str, language: str, pos_hint: str | None = None) -> Marked | None:
    """`to borrow` → Marked("to", "borrow", "verb"); None when the headword has no marker (or
    its part-of-speech hint says it is something the marker does not mark)."""
    first, _, rest = headword.partition(" ")
    rest = rest.strip()
    pos = MARKERS.get(language.lower(), {}).get(first.casefold())
    if pos is None or not rest or not any(ch.isalpha() for ch in rest):
        return None
    if pos_hint and pos_hint != pos:
        return None
    return Marked(marker=first, word=rest, part_of_speech=pos)
