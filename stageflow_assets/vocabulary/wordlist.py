"""Word lists: plain text (one headword a line, `#` comments), CSV with a header, or JSON.

Every problem with a line is reported with its line number and the line is left out; only a
file that cannot be a word list at all (binary, no header, nothing usable) is an error.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from pathlib import Path

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.vocabulary.models import BadLine, Duplicate, WordEntry, WordListDoc

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_HEADWORD_CHARS = 100
MAX_WORDS = 20_000
WORD_COLUMNS = ("word", "headword", "term", "lemma")
POS_COLUMNS = ("pos", "part_of_speech", "part of speech")
POS_ALIASES = {
    "n": "noun", "noun": "noun", "v": "verb", "verb": "verb", "a": "adjective", "adj": "adjective",
    "adjective": "adjective", "s": "adjective", "r": "adverb", "adv": "adverb", "adverb": "adverb",
}
_COMMENT = re.compile(r"(^|\s)#.*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029]")


def normalise_headword(text: str) -> str:
    """NFC, trimmed, inner whitespace collapsed: what the card shows and identity builds on."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def normalise_tags(raw: object) -> list[str]:
    """Anki tags cannot hold spaces: split on commas/whitespace, keep `::` hierarchies."""
    items = raw if isinstance(raw, list) else re.split(r"[,\s]+", str(raw or ""))
    tags = [re.sub(r"[^\w:.-]+", "_", str(t).strip()) for t in items if str(t).strip()]
    return list(dict.fromkeys(t for t in tags if t.strip("_")))


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise BadInputError(f"{path.name}: the word list is empty; put one headword per line", input=str(path))
    if len(data) > MAX_FILE_BYTES:
        raise BadInputError(f"{path.name}: {len(data)} bytes is too big for a word list "
                            f"(limit {MAX_FILE_BYTES}); split it", input=str(path))
    nul = data.find(b"\x00")
    try:
        if nul >= 0:
            raise UnicodeDecodeError("utf-8", data, nul, nul + 1, "NUL byte")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path.name}: not a UTF-8 text word list (binary data at byte {exc.start}); "
            "save it as plain UTF-8 text, CSV or JSON", input=str(path), byte=exc.start,
        ) from exc


def _entry(line: int, word: object, pos: object = None, tags: object = None,
           note: object = None) -> WordEntry | BadLine:
    raw = "" if word is None else str(word)
    head = normalise_headword(raw)
    cut = raw[:80]
    if not head:
        return BadLine(line=line, reason="no headword", text=cut)
    if len(head) > MAX_HEADWORD_CHARS:
        return BadLine(line=line, reason=f"headword of {len(head)} characters "
                       f"(limit {MAX_HEADWORD_CHARS})", text=cut)
    if _CONTROL.search(head):
        return BadLine(line=line, reason="control characters in the headword", text=cut)
    if not any(ch.isalpha() for ch in head):
        return BadLine(line=line, reason="no letters in the headword", text=cut)
    hint = str(pos or "").strip().lower().rstrip(".")
    if hint and hint not in POS_ALIASES:
        return BadLine(line=line, reason=f"unknown part of speech {hint[:20]!r} "
                       "(use noun, verb, adjective or adverb)", text=cut)
    return WordEntry(line=line, headword=head, pos_hint=POS_ALIASES.get(hint),
                     tags=normalise_tags(tags), note=normalise_headword(str(note or ""))[:500])


def _text_rows(text: str) -> tuple[list[tuple[int, dict]], int]:
    rows, skipped = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        word = _COMMENT.sub("", line).strip()
        if not word:
            skipped += 1
            continue
        rows.append((number, {"word": word}))
    return rows, skipped


def _csv_rows(text: str, name: str) -> tuple[list[tuple[int, dict]], int]:
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lower() for h in next(reader, [])]
    word_col = next((header.index(c) for c in WORD_COLUMNS if c in header), None)
    if word_col is None:
        raise BadInputError(
            f"{name}: the CSV needs a header row naming a `word` column (optional: pos, tags, "
            f"note); its first row is {', '.join(header)[:80]!r}", header=header[:20],
        )
    pos_col = next((header.index(c) for c in POS_COLUMNS if c in header), None)
    cols = {"pos": pos_col, "tags": _index(header, "tags"), "note": _index(header, "note", "notes")}
    rows, skipped = [], 0
    for cells in reader:
        if not any(c.strip() for c in cells):
            skipped += 1
            continue
        get = lambda i: cells[i] if i is not None and i < len(cells) else None  # noqa: E731
        rows.append((reader.line_num, {"word": get(word_col), **{k: get(i) for k, i in cols.items()}}))
    return rows, skipped


def _index(header: list[str], *names: str) -> int | None:
    return next((header.index(n) for n in names if n in header), None)


def _json_rows(text: str, name: str) -> list[tuple[int, dict]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})",
                            line=exc.lineno) from exc
    items = data.get("words") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BadInputError(f"{name}: JSON word lists are a list of words or of objects with "
                            "a `word` key (or an object with a `words` list)")
    rows = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            word = next((item.get(k) for k in WORD_COLUMNS if item.get(k) is not None), None)
            rows.append((number, {"word": word if isinstance(word, str) else None,
                                  "pos": item.get("pos") or item.get("part_of_speech"),
                                  "tags": item.get("tags"), "note": item.get("note")}))
        else:
            rows.append((number, {"word": item if isinstance(item, str) else None}))
    return rows


def parse_word_list(path: Path) -> WordListDoc:
    text = _decode(path)
    suffix = path.suffix.lower()
    fmt = "csv" if suffix in (".csv", ".tsv") else "json" if suffix == ".json" else "text"
    skipped = 0
    if fmt == "csv":
        rows, skipped = _csv_rows(text, path.name)
    elif fmt == "json":
        rows = _json_rows(text, path.name)
    else:
        rows, skipped = _text_rows(text)
    words: list[WordEntry] = []
    bad: list[BadLine] = []
    dupes: list[Duplicate] = []
    first: dict[str, WordEntry] = {}
    for number, row in rows:
        entry = _entry(number, **row)
        if isinstance(entry, BadLine):
            bad.append(entry)
            continue
        seen = first.get(entry.headword.casefold())
        if seen is not None:
            dupes.append(Duplicate(line=number, headword=entry.headword, first_line=seen.line, kept=seen.headword))
            continue
        first[entry.headword.casefold()] = entry
        words.append(entry)
    if not words:
        reasons = "; ".join(f"line {b.line}: {b.reason}" for b in bad[:3])
        raise BadInputError(f"{path.name}: no usable headword in the list" + (f" ({reasons})" if reasons else ""),
                            bad_lines=[b.model_dump() for b in bad[:50]])
    if len(words) > MAX_WORDS:
        raise BadInputError(f"{path.name}: {len(words)} words is more than one deck build takes "
                            f"({MAX_WORDS}); split the list", words=len(words))
    return WordListDoc(source_name=path.name, format=fmt, words=words, bad_lines=bad,
                       duplicates=dupes, blank_or_comment_lines=skipped)
