"""IPA validation: a code-point whitelist that accepts espeak-ng's output.

Segment-level validators (panphon) reject stress marks and espeak-ng's rhotic vowels `ɚ ɝ ᵻ`;
ipapy is unmaintained. A whitelist of IPA blocks accepted espeak-ng output for 14 languages
(research/anki.md §5); what it must reject explicitly are espeak-ng's language-switch markers
`(en)` and tone digits, which appear when a voice meets text of another language.
"""

from __future__ import annotations

import re
import unicodedata

# single code points and ranges of the IPA and the characters espeak-ng puts between words
_SINGLES = set("abcdefghijklmnopqrstuvwxyzæçðøħŋœβθχ‖‿ .|")
_RANGES = (
    (0x01C0, 0x01C3),  # click letters
    (0x0250, 0x02AF),  # IPA Extensions
    (0x02B0, 0x02FF),  # spacing modifier letters: ˈ ˌ ː ʰ ʲ ʷ ˞ and tone letters
    (0x0300, 0x036F),  # combining diacritics, tie bar U+0361
    (0x1D00, 0x1DBF),  # phonetic extensions: ᵻ ᵊ
    (0x2191, 0x2198),  # up/downstep arrows
)
_LANGUAGE_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)?\)")
_DIGIT = re.compile(r"\d")
# a transcription with neither a vowel letter nor a syllabic consonant (U+0329) is suspect
_VOWELISH = re.compile("[aeiouyæøœɐɑɒɔəɘɚɛɜɝɞɤɨɪɯɵɶʉʊʌʏᵻᵊ\u0329]")


def _allowed(char: str) -> bool:
    if char in _SINGLES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _RANGES)


def normalise(ipa: str) -> str:
    """NFD for checking (diacritics separate), without one pair of `/…/` or `[…]` delimiters."""
    text = unicodedata.normalize("NFD", ipa.strip())
    if len(text) >= 2 and (text[0], text[-1]) in {("/", "/"), ("[", "]")}:
        text = text[1:-1].strip()
    return text


def ipa_problems(ipa: str) -> list[str]:
    """Why `ipa` is not a valid transcription; empty when it is."""
    text = normalise(ipa)
    if not text:
        return ["empty transcription"]
    problems = []
    switches = _LANGUAGE_SWITCH.findall(text)
    if switches:
        problems.append(f"language-switch markers {' '.join(sorted(set(switches)))}")
    if _DIGIT.search(text):
        problems.append("digits (tone numbers are not IPA)")
    bad = sorted({c for c in _LANGUAGE_SWITCH.sub("", _DIGIT.sub("", text)) if not _allowed(c)})
    if bad:
        problems.append("characters outside the IPA: " + " ".join(f"{c!r} U+{ord(c):04X}" for c in bad))
    if not _VOWELISH.search(text):
        problems.append("no vowel")
    return problems


def is_valid_ipa(ipa: str) -> bool:
    return not ipa_problems(ipa)
