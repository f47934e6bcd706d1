"""Glossaries: CSV rows of `source term, target language, target term`, forced in translation.

A global glossary lives at `$STAGEFLOW_HOME/glossary.csv`; a job's own comes from
`stageflow subtitles --glossary FILE`. Job entries win over global ones for the same term.
"""

from __future__ import annotations

import csv
import re
import string
from pathlib import Path

from pydantic import BaseModel

from stageflow_assets.core.errors import BadInputError

HEADER = ("source", "target_language", "target")
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}([-_][a-z0-9]{2,8})?")


class GlossaryEntry(BaseModel):
    source: str
    target_language: str
    target: str


def load_glossary(path: Path) -> list[GlossaryEntry]:
    """Every entry of the CSV at `path`; the first unusable line fails the whole file, by number."""
    text = _decode(path)
    entries: list[GlossaryEntry] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and tuple(c.lower() for c in cells[:3]) == HEADER:
            continue
        if len(cells) != 3 or not all(cells):
            raise BadInputError(
                f"{path} line {number}: expected `source term,target language,target term`, found "
                f"{len([c for c in cells if c])} of 3 cells; fix or remove that row",
                glossary=str(path), line=number, row=row,
            )
        if not LANGUAGE_CODE.fullmatch(cells[1].lower()):
            raise BadInputError(
                f"{path} line {number}: {cells[1][:20]!r} is not a language code; write the target "
                "language as its ISO 639-1 code (e.g. es)", glossary=str(path), line=number, row=row,
            )
        entries.append(GlossaryEntry(source=cells[0], target_language=cells[1].lower(), target=cells[2]))
    return entries


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the glossary ({exc.strerror or exc}); check the file",
                            glossary=str(path)) from exc
    try:
        text = data.decode("utf-8-sig")
        bad = -1
    except UnicodeDecodeError as exc:
        text, bad = "", exc.start
    # a NUL byte is valid UTF-8 and the csv module takes it: only binary files hold one
    nul = data.find(b"\x00")
    if nul >= 0 and (bad < 0 or nul < bad):
        bad = nul
    if bad < 0:
        return text
    line = data.count(b"\n", 0, bad) + 1
    raise BadInputError(
        f"{path} line {line}: binary data (byte {bad}), not UTF-8 text; save the glossary as a "
        "UTF-8 CSV of `source term,target language,target term` rows",
        glossary=str(path), line=line, byte=bad,
    )


def for_language(entries: list[GlossaryEntry], lang: str) -> dict[str, str]:
    """source term → target term for one language (later entries override earlier ones)."""
    return {e.source: e.target for e in entries if e.target_language == lang}


def _pattern(term: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)


def _token(n: int) -> str:
    # letters only: Apertium passes unknown words through unchanged (marked, then unmarked)
    letters = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        letters = string.ascii_lowercase[r] + letters
    return f"Xgterm{letters}"


def protect(lines: list[str], terms: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Replace source terms by placeholder words a rule-based engine leaves alone."""
    placeholders: dict[str, str] = {}
    for n, (source, target) in enumerate(sorted(terms.items(), key=lambda kv: -len(kv[0]))):
        token = _token(n)
        pattern = _pattern(source)
        if any(pattern.search(line) for line in lines):
            lines = [pattern.sub(token, line) for line in lines]
            placeholders[token] = target
    return lines, placeholders


def restore(lines: list[str], placeholders: dict[str, str]) -> list[str]:
    for token, target in placeholders.items():
        lines = [re.sub(rf"{token}(?![a-z])", target, line) for line in lines]
    return lines


def missing_terms(sources: list[str], targets: list[str], terms: dict[str, str]) -> dict[int, list[str]]:
    """Per cue (1-based), the target terms that should be there and are not."""
    missing: dict[int, list[str]] = {}
    for index, (src, tgt) in enumerate(zip(sources, targets), start=1):
        absent = [t for s, t in terms.items() if _pattern(s).search(src) and t.lower() not in tgt.lower()]
        if absent:
            missing[index] = absent
    return missing
