"""The journey's blocking safety checks: §86a StGB content (stage 1) and output levels (stage 3).

Keyword checks over the project's own lists (`safety_terms.py`). The text is normalised once per
check; the patterns compile once per list, on first use or all at once with `precompile()`.

- Case, diacritics and ß fold away ("Führer", "Fuehrer", "Fuhrer", "FÜHRER" are one spelling); a few
  Cyrillic/Greek look-alike letters become their Latin twins; zero-width characters go.
- Look-alike digits and signs stand for letters (1→i/l, 3→e, 4→a, 0→o, 5→s, 7→t, @→a, $→s, !/|→i).
- Inside a word up to two punctuation marks may sit between letters ("S.i.e.g", "H-e-i-l"); between
  the words of an entry up to three non-letters, or none ("Sieg-Heil", "siegheil"). An entry with
  every letter spaced out ("S i e g H e i l") matches; a word broken once by a space does not
  ("Haken, Kreuz" is not "Hakenkreuz"). Letters may be repeated ("Siiieg").
- Words are whole after normalisation: "Siegheilung" and "Heilbronn" do not match. Endings on the
  last word and compounds follow each entry's `inflect` and `compound` (see `safety_terms.py`):
  "Hakenkreuzfahne" matches, so does "SS-Runen".

Numeric codes (88, 18, 14, 28, 1488) count only where used as a greeting: right before a greeting
word with no punctuation between ("88 Grüße", "88er Gruß", "18 greetings"; not "Zimmer 18, Grüße"),
or right after one at the end of a phrase ("Viele Grüße, 88", "Heil 88!"; not "Grüße, 18 Uhr").
"14/88" counts on its own ("14-88" is a range and does not). A number next to a digit, a decimal
mark or a slash is another number ("1988", "18.88"), so years, ages, prices and counts never match.

The §86a list names slogans, greetings, symbols and banned organisations, not the era: "Nazi",
"Hitler" or "Zweiter Weltkrieg" alone are no hits. A history sentence that names a symbol or an
organisation ("Der Hitlergruß ist verboten") is a keyword hit; clearing it is the `confirm` hook's job.

The minors rule (every output level): a word for a child (or an age under 18) and a word for
sexual content in the same sentence, or a direct term such as "child pornography".
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.journey import safety_terms as lists
from stageflow_assets.journey.safety_patterns import Normalised, TermMatcher, normalise

__all__ = ["LEVELS", "DEFAULT_LEVEL", "CHECK_86A", "SafetyMatch", "SafetyVerdict", "Confirm", "check_86a",
           "check_output", "normalise", "precompile"]

LEVELS = ("kids", "youth", "adult", "research")
DEFAULT_LEVEL = "youth"
CHECK_86A = "§86a"


@dataclass(frozen=True)
class SafetyMatch:
    """One list entry found in the text."""

    term: str        # the canonical list entry that matched
    category: str    # "slogan", "greeting", "symbol", "organisation", "code", "minors", "violence", ...
    found: str       # the input text as written that matched
    language: str    # "de" or "en" (the list entry's language)


@dataclass(frozen=True)
class SafetyVerdict:
    """The outcome of one check: blocked or not, what matched, who confirmed or cleared it."""

    check: str                       # "§86a" or "output:<level>"
    blocked: bool
    matches: tuple[SafetyMatch, ...]
    confirmed_by: str | None = None  # e.g. "llm:<model>" when an LLM confirmation ran

    @property
    def cleared(self) -> bool:
        """Keywords matched but the confirmation found them harmless (e.g. historical context)."""
        return bool(self.matches) and not self.blocked

    def summary(self) -> str:
        """One line naming what matched; "" when nothing did."""
        if not self.matches:
            return ""
        line = "; ".join(f'"{m.term}" ({m.category}, {m.language}) written "{" ".join(m.found.split())}"'
                         for m in self.matches)
        if self.confirmed_by:
            line += f" — {'confirmed' if self.blocked else 'cleared'} by {' '.join(self.confirmed_by.split())}"
        return line

    def as_dict(self) -> dict:
        """JSON-able, for records and Dagster metadata."""
        return {"check": self.check, "blocked": self.blocked, "matches": [asdict(m) for m in self.matches],
                "confirmed_by": self.confirmed_by, "summary": self.summary()}


Confirm = Callable[[str, tuple[SafetyMatch, ...]], bool]   # True = really forbidden


def check_86a(text: str, confirm: Confirm | None = None) -> SafetyVerdict:
    """Stage 1: slogans, greetings, symbols, organisations and codes under §86a StGB; blocking.

    With `confirm`, keyword hits go to it (text, matches); only an explicit False clears them.
    A `label` attribute on it (e.g. "llm:<model>") names it in `confirmed_by`."""
    normalised = Normalised(text)
    return _verdict(CHECK_86A, text, _find_86a(normalised), confirm)


def check_output(text: str, level: str = DEFAULT_LEVEL, confirm: Confirm | None = None) -> SafetyVerdict:
    """Stage 3: §86a, the minors rule and the level's own lists (kids ⊃ youth ⊃ adult ⊃ research).

    An unknown level is bad input; `confirm` works as in `check_86a`, on all hits together."""
    if level not in LEVELS:
        raise BadInputError(f"unknown safety level {level!r}: use one of {', '.join(LEVELS)}",
                            level=level, valid=list(LEVELS))
    normalised = Normalised(text)
    found = _find_terms(_matcher(level), normalised) + _find_codes(normalised) + _find_minors(normalised)
    return _verdict(f"output:{level}", text, found, confirm)


def _verdict(check: str, text: str, found: list[tuple[int, SafetyMatch]],
             confirm: Confirm | None) -> SafetyVerdict:
    matches = tuple(match for _, match in sorted(found, key=lambda item: item[0]))
    if not matches or confirm is None:
        return SafetyVerdict(check, bool(matches), matches)
    forbidden = confirm(text, matches) is not False   # anything but a clear "no" keeps the block
    label = getattr(confirm, "label", None) or f"callable:{getattr(confirm, '__qualname__', type(confirm).__name__)}"
    return SafetyVerdict(check, forbidden, matches, confirmed_by=str(label))


def precompile() -> None:
    """Compile every list now (about half a second) rather than on each level's first check."""
    for level in LEVELS:
        _matcher(level)
    _list_matcher("PARAGRAPH_86A")
    _list_matcher("MINOR_WORDS", "SEXUAL_WORDS")


@cache
def _matcher(level: str) -> TermMatcher:
    """§86a and the level's own lists (cumulative: each level adds to the looser ones), compiled once."""
    per_level = {"research": lists.MINORS_DIRECT, "adult": lists.ADULT, "youth": lists.YOUTH, "kids": lists.KIDS}
    looser = LEVELS[LEVELS.index(level):]
    return TermMatcher(lists.PARAGRAPH_86A + tuple(t for name in looser for t in per_level[name]))


@cache
def _list_matcher(*names: str) -> TermMatcher:
    return TermMatcher(tuple(t for name in names for t in getattr(lists, name)))


# --- numeric codes -------------------------------------------------------------------------------

_CODES = {code: language for code, language, _ in lists.NUMERIC_CODES}
_NUMBER = "|".join(re.escape(code).replace("/", r"\s?[/|]\s?") for code in _CODES)
_GREETING = r"(?:grue?ss?(?:e|en|es)?|greetings?|regards|salutes?)"
_CODE_PATTERNS = (
    re.compile(rf"(?<![\w.,/])(?P<code>{_NUMBER})(?:er)?[ -]{{1,2}}{_GREETING}(?!\w)"),         # 88 Grüße
    re.compile(rf"(?<!\w)(?:{_GREETING}|heil|hail)[^\w/]{{1,3}}(?P<code>{_NUMBER})"              # Grüße, 88.
               rf"(?!\w|[.,/]\d)(?=\s*(?:[.!?;]|\n|$))"),
    re.compile(r"(?<![\w.,/])(?P<code>14\s?[/|]\s?88)(?!\w|[.,/]\d)"),                          # 14/88
)


def _find_codes(normalised: Normalised) -> list[tuple[int, SafetyMatch]]:
    found: list[tuple[int, int, SafetyMatch]] = []
    for pattern in _CODE_PATTERNS:
        for m in pattern.finditer(normalised.text):
            code = re.sub(r"\s", "", m.group("code")).replace("|", "/")
            if not any(f.term == code and s < m.end() and m.start() < e for s, e, f in found):
                match = SafetyMatch(code, "code", normalised.found(m.start(), m.end()), _CODES[code])
                found.append((m.start(), m.end(), match))
    return [(start, match) for start, _, match in found]


def _find_terms(matcher: TermMatcher, normalised: Normalised) -> list[tuple[int, SafetyMatch]]:
    return [(start, SafetyMatch(t.canonical, t.category, normalised.found(start, end), t.language))
            for t, start, end in matcher.spans(normalised)]


def _find_86a(normalised: Normalised) -> list[tuple[int, SafetyMatch]]:
    return _find_terms(_list_matcher("PARAGRAPH_86A"), normalised) + _find_codes(normalised)


# --- the minors rule -----------------------------------------------------------------------------

_AGE = re.compile(r"(?<![\w.,])(?P<age>\d{1,2})\W{0,2}(?:(?P<en>years?\W{0,2}old|yo)|(?P<de>jahre?\W{0,2}alt|jahrig\w*))(?!\w)")
_SENTENCE_END = re.compile(r"[.!?;\n]")


def _find_minors(normalised: Normalised) -> list[tuple[int, SafetyMatch]]:
    """A word for a child (or an age under 18) and a word for sexual content in one sentence.

    The direct terms ("child pornography") are in the level lists."""
    text = normalised.text
    words = _list_matcher("MINOR_WORDS", "SEXUAL_WORDS").spans(normalised)
    minors = [(t.canonical, t.language, s, e) for t, s, e in words if t.category == "minor"]
    minors += [(f"{m['age']} years old", "en" if m["en"] else "de", m.start(), m.end())
               for m in _AGE.finditer(text) if int(m["age"]) < 18]
    sexual = [(t.canonical, t.language, s, e) for t, s, e in words if t.category == "sexual"]
    if not minors or not sexual:
        return []
    ends = [m.start() for m in _SENTENCE_END.finditer(text)]

    def first_per_sentence(items: list[tuple[str, str, int, int]]) -> dict[int, tuple[str, str, int, int]]:
        first: dict[int, tuple[str, str, int, int]] = {}
        for item in sorted(items, key=lambda item: item[2]):
            first.setdefault(bisect.bisect_right(ends, item[2]), item)
        return first

    child, sex = first_per_sentence(minors), first_per_sentence(sexual)
    found = []
    for sentence in sorted(child.keys() & sex.keys()):
        (minor, language, m_start, m_end), (sexual_term, _, s_start, s_end) = child[sentence], sex[sentence]
        start, end = min(m_start, s_start), max(m_end, s_end)
        found.append((start, SafetyMatch(f"{minor} + {sexual_term}", "minors", normalised.found(start, end), language)))
    return found
