"""Professional subtitle rules (Netflix timed-text guides), in one table a user can override.

Reading speeds are adult characters per second, counted in graphemes with spaces and
punctuation, per the Netflix language guides.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

READING_SPEED_CPS: dict[str, float] = {
    "en": 20, "ar": 20,
    "hi": 22, "bn": 22, "ta": 22, "te": 22, "kn": 22, "ml": 22, "mr": 22,
    "zh": 9, "ko": 12, "ja": 4, "th": 17,
}
DEFAULT_READING_SPEED_CPS = 17.0  # Spanish, French, German, Catalan and most others
LINE_CHARS: dict[str, int] = {"th": 35}
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th"})

# Words a line or cue must not end on (they belong with the next word: article + noun,
# preposition + object), and conjunctions a break may come before.
CLINGING_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("a an the this that these those my your his her its our their of to in on at by for with from into".split()),
    "es": frozenset("el la los las un una unos unas lo al del de a en con por para mi tu su sus".split()),
    "ca": frozenset("el la els les un una uns unes l' al del dels de a en amb per pel meu teu seu".split()),
    "fr": frozenset("le la les un une des du de à au aux en avec pour par mon ton son".split()),
    "de": frozenset("der die das den dem des ein eine einen einem einer mit zu von für in an auf".split()),
    "pt": frozenset("o a os as um uma uns umas do da dos das de em no na com por para".split()),
    "it": frozenset("il lo la i gli le un uno una del della di a in con per da".split()),
}
CONJUNCTIONS: dict[str, frozenset[str]] = {
    "en": frozenset("and but or so because although while when if that which who".split()),
    "es": frozenset("y e pero o u porque aunque mientras cuando si que".split()),
    "ca": frozenset("i però o perquè encara mentre quan si que".split()),
    "fr": frozenset("et mais ou donc car parce quand si que qui".split()),
    "de": frozenset("und aber oder denn weil obwohl wenn dass als".split()),
    "pt": frozenset("e mas ou porque embora quando se que".split()),
    "it": frozenset("e ma o perché sebbene quando se che".split()),
}


class SubtitleRules(dg.ConfigurableResource):
    """Limits for cue building and QC; `reading_speed_cps` overrides the per-language table."""

    max_line_chars: int = 42
    max_lines: int = 2
    min_duration_s: float = 5 / 6
    max_duration_s: float = 7.0
    min_gap_frames: int = 2
    chain_gap_frames: int = 11  # gaps of 3..11 frames are closed to the minimum
    pause_split_s: float = 1.0
    reading_speed_cps: dict[str, float] = Field(default_factory=dict)
    default_fps: float = 25.0

    def gap_ok(self, frames: float) -> bool:
        """A gap is exactly the minimum (chained) or longer than the chaining range."""
        tolerance = 0.05  # millisecond rounding of cue times
        return abs(frames - self.min_gap_frames) <= tolerance or frames >= self.chain_gap_frames + 1 - tolerance

    def cps(self, lang: str) -> float:
        return float(self.reading_speed_cps.get(lang) or READING_SPEED_CPS.get(lang, DEFAULT_READING_SPEED_CPS))

    def line_chars(self, lang: str) -> int:
        return min(self.max_line_chars, LINE_CHARS.get(lang, self.max_line_chars))

    def parameters(self, lang: str) -> dict:
        return {
            "max_line_chars": self.line_chars(lang), "max_lines": self.max_lines,
            "min_duration_s": round(self.min_duration_s, 4), "max_duration_s": self.max_duration_s,
            "min_gap_frames": self.min_gap_frames, "chain_gap_frames": self.chain_gap_frames,
            "pause_split_s": self.pause_split_s, "reading_speed_cps": self.cps(lang),
        }


def clinging(lang: str) -> frozenset[str]:
    return CLINGING_WORDS.get(lang, frozenset())


def conjunctions(lang: str) -> frozenset[str]:
    return CONJUNCTIONS.get(lang, frozenset())
