"""Prompts for the Claude provider. Bump PROMPT_VERSION on any change: it is in every fingerprint."""

from __future__ import annotations

import re

PROMPT_VERSION = "1"

JSON_RETRY = (
    "Your previous reply could not be used: {error}\n"
    "Reply again with only one JSON value that matches the requested schema, nothing else."
)

TRANSLATE_SYSTEM = (
    "You are a professional subtitle translator. Translate subtitle cues from {source} to {target}.\n"
    "Each input line is one cue, written as `<number>: <text>`.\n"
    "Rules:\n"
    "- Reply with exactly one line per cue, in the same order, as `<number>: <translation>`, "
    "using the same numbers. Never merge, split, skip or add cues.\n"
    "- Every translation is non-empty; keep names, numbers and tone; keep it short enough to read "
    "as a subtitle.\n"
    "- Reply with the numbered lines only: no commentary, no code fences."
)

GLOSSARY = (
    "Glossary (mandatory): wherever a source term appears, translate it exactly as given:\n{terms}"
)

TRANSLATE_USER = "Translate these {count} cues from {source} to {target}:\n\n{cues}"

TRANSLATE_RETRY = (
    "Your reply is unusable: {problems}. Reply again with all {count} cues, numbered {first} to "
    "{last}, one `<number>: <translation>` line each, none empty, nothing else."
)

_NUMBERED = re.compile(r"^\s*(\d+)\s*[:.)]\s?(.*)$")


def translate_system(source: str, target: str, glossary: dict[str, str]) -> str:
    system = TRANSLATE_SYSTEM.format(source=source, target=target)
    if glossary:
        terms = "\n".join(f"- {src} → {dst}" for src, dst in sorted(glossary.items()))
        system += "\n\n" + GLOSSARY.format(terms=terms)
    return system


def numbered(lines: list[str], first: int = 1) -> str:
    """Cue text on one line each (internal line breaks and runs of spaces collapse to one space)."""
    return "\n".join(f"{first + i}: {' '.join(line.split())}" for i, line in enumerate(lines))


def parse_numbered(text: str, first: int, count: int) -> tuple[list[str] | None, list[str]]:
    """(lines in cue order, []) when the reply has exactly cues first..first+count-1, each non-empty;
    otherwise (None, problems)."""
    found: dict[int, str] = {}
    problems: list[str] = []
    duplicates: set[int] = set()
    for raw in text.strip().strip("`").splitlines():
        if not raw.strip():
            continue
        match = _NUMBERED.match(raw)
        if match is None:
            problems.append(f"unnumbered line {raw.strip()[:40]!r}")
            continue
        number, body = int(match.group(1)), match.group(2).strip()
        if number in found:
            duplicates.add(number)
        found[number] = body
    expected = set(range(first, first + count))
    missing = sorted(expected - found.keys())
    extra = sorted(found.keys() - expected)
    empty = sorted(n for n, body in found.items() if n in expected and not body)
    if len(found) != count or missing or extra:
        problems.insert(0, f"{len(found)} numbered lines for {count} cues")
    for label, numbers in (("missing", missing), ("unexpected", extra), ("empty", empty),
                           ("repeated", sorted(duplicates))):
        if numbers:
            problems.append(f"{label} {', '.join(map(str, numbers[:10]))}")
    if problems:
        return None, problems
    return [found[n] for n in sorted(expected)], []
