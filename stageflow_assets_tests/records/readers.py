"""Reading exports back with real readers: poppler's pdftotext, python-docx, rocrate."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

XHTML = "{http://www.w3.org/1999/xhtml}"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian poppler-utils)")
    return path


def pdf_text(pdf: Path) -> str:
    return subprocess.run([need("pdftotext"), "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def squeeze(text: str) -> str:
    """Text without whitespace: PDF extraction wraps lines and spaces CJK as it likes."""
    return "".join(text.split())


@dataclass(frozen=True)
class Word:
    page: int
    x: float
    y: float
    bottom: float
    text: str


FOOTER_BAND = 50.0  # points above a page's bottom edge: the report's page footer, below any table


def pdf_words(pdf: Path) -> list[Word]:
    """Every word with its page and position (`pdftotext -bbox-layout`), page footers left out."""
    xhtml = subprocess.run([need("pdftotext"), "-bbox-layout", "-enc", "UTF-8", str(pdf), "-"],
                           capture_output=True, check=True).stdout
    root = etree.fromstring(xhtml, etree.XMLParser(recover=True, resolve_entities=False, no_network=True))
    words = []
    for number, page in enumerate(root.iter(f"{XHTML}page")):
        footer = float(page.get("height")) - FOOTER_BAND
        for word in page.iter(f"{XHTML}word"):
            if float(word.get("yMin")) >= footer:
                continue
            words.append(Word(number, float(word.get("xMin")), float(word.get("yMin")), float(word.get("yMax")),
                              word.text or ""))
    return words


def pdf_table_rows(pdf: Path, headings: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The rows of the table whose heading row is `headings` (one word each), on every page it
    spans: a row starts at a number in the first column and ends where the next one starts; the
    table ends at the first word in the first column that is no number. Cells are joined words,
    line by line."""
    words = pdf_words(pdf)
    rows: list[tuple[str, ...]] = []
    for page in sorted({w.page for w in words}):
        on_page = sorted((w for w in words if w.page == page), key=lambda w: (round(w.y), w.x))
        head = _heading_row(on_page, headings)
        if head is None:
            continue
        columns = [w.x - 1 for w in head] + [float("inf")]
        below = [w for w in on_page if w.y > head[0].bottom - 1]
        starts = []
        for word in below:
            if word.x < columns[1]:
                if not re.fullmatch(r"\d+", word.text):
                    break
                starts.append(word)
        end = next((w.y for w in below if w.x < columns[1] and not re.fullmatch(r"\d+", w.text)), float("inf"))
        for i, start in enumerate(starts):
            # by the middle of each word: glyphs of a fallback font sit in taller boxes
            bottom = starts[i + 1].y if i + 1 < len(starts) else end
            in_row = [w for w in below if start.y <= (w.y + w.bottom) / 2 < bottom]
            rows.append(tuple(" ".join(w.text for w in in_row if columns[c] <= w.x < columns[c + 1])
                              for c in range(len(headings))))
    return rows


def _heading_row(words: list[Word], headings: tuple[str, ...]) -> list[Word] | None:
    for first in (w for w in words if w.text == headings[0]):
        line = sorted((w for w in words if abs(w.y - first.y) < 2 and w.x >= first.x), key=lambda w: w.x)
        if [w.text for w in line[:len(headings)]] == list(headings):
            return line[:len(headings)]
    return None


def pdf_images(pdf: Path) -> list[tuple[int, int]]:
    """(width, height) of each image embedded (`pdfimages -list`)."""
    out = subprocess.run([need("pdfimages"), "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    sizes = []
    for line in out.splitlines()[2:]:
        fields = line.split()
        if len(fields) > 4 and fields[2] == "image":
            sizes.append((int(fields[3]), int(fields[4])))
    return sizes


def pdf_fonts(pdf: Path) -> str:
    return subprocess.run([need("pdffonts"), str(pdf)], capture_output=True, text=True, check=True).stdout


def unzip(archive: Path, target: Path) -> Path:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(target)
    return target


def docx_text(docx_path: Path) -> str:
    """Everything in the .docx package's XML parts (for what must not be in it)."""
    with zipfile.ZipFile(docx_path) as zipped:
        return "".join(zipped.read(n).decode("utf-8", "replace") for n in zipped.namelist() if n.endswith(".xml"))
