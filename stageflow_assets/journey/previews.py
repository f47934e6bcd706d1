"""The markdown each journey stage shows in the UI: the text at that point, and the media."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from stageflow_assets.journey.models import ClearanceDoc, InterceptionDoc, PromptDoc

THUMBNAIL_PX = 256


def cell(text: object, width: int = 120) -> str:
    """Text safe inside a markdown table cell."""
    text = " ".join(str(text or "").split()).replace("|", "\\|").replace("<", "&lt;")
    return text if len(text) <= width else text[: width - 1] + "…"


def prompt_preview(doc: PromptDoc) -> str:
    rows = ["| | language | text |", "|---|---|---|", f"| prompt | {doc.language} | {cell(doc.original)} |"]
    if doc.translation is not None:
        how = doc.translation.get("backend", "")
        rows.append(f"| working text ({how}) | {doc.work_lang} | {cell(doc.text)} |")
    for check in doc.checks:
        verdict = f"**blocked**: {cell(check.summary)}" if check.blocked else cell(check.summary or "clear")
        rows.append(f"| {check.check} ({check.text_of}) | | {verdict} |")
    return "\n".join(rows)


def interception_preview(doc: InterceptionDoc) -> str:
    rows = [f"**{doc.interception}**, {len(doc.hops)} iteration(s)", "",
            "| # | hop | text | backend | model | s |", "|---:|---|---|---|---|---:|",
            f"| 0 | | {cell(doc.input)} | | | |"]
    for hop in doc.hops:
        rows.append(f"| {hop['index']} | {hop['source']}→{hop['target']} | {cell(hop['text'])} | "
                    f"{hop['backend']} | {cell(hop.get('model') or '', 30)} | {hop['duration_s']:.2f} |")
    return "\n".join(rows)


def clearance_preview(doc: ClearanceDoc) -> str:
    rows = [f"level **{doc.level}**: {cell(doc.text)}", "", "| # | output | verdict |", "|---:|---|---|"]
    for o in doc.outputs:
        verdict = f"**blocked**: {cell(o.summary)}" if o.blocked else cell(o.summary or "clear")
        rows.append(f"| {o.index} | {cell(o.config.get('label', o.spec), 40)} | {verdict} |")
    return "\n".join(rows)


def media_preview(made: list[tuple[int, str, str, Path]]) -> str:
    """A table of (index, label, file name), and each image as a thumbnail the UI shows inline."""
    rows = ["| # | output | file |", "|---:|---|---|"]
    rows += [f"| {index} | {cell(label, 40)} | `{name}` |" for index, label, name, _ in made]
    pictures = [thumbnail_md(path, f"output {index}") for index, _, name, path in made if name.endswith(".png")]
    return "\n".join(rows + [""] + [p for p in pictures if p])


def thumbnail_md(path: Path, alt: str) -> str:
    """An inline image: a small JPEG as a data URI (the UI cannot read files from disk)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
    except (OSError, ValueError):
        return ""
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()})"
