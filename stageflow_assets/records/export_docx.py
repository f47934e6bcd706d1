"""The record as a Word document (python-docx): a metadata table, each stage, the Stille Post
chain with one table row per iteration, the pictures, the parameters."""

from __future__ import annotations

import io
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.shared import Cm, Pt
from PIL import Image

from stageflow_assets.core.paths import StagePaths
from stageflow_assets.records import report
from stageflow_assets.records.models import Record, RecordItem
from stageflow_assets.records.report import FileCheck, Step

CHAIN_HEADINGS = ("#", "languages", "text", "backend", "duration")
CHAIN_WIDTHS_CM = (1.0, 2.6, 8.4, 3.2, 1.8)
PICTURE_WIDTH = Cm(10)
_DOCX_PICTURES = {"image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff"}


def _table(doc: DocxDocument, rows: list[tuple[str, ...]], heading: tuple[str, ...] | None = None,
           widths: tuple[float, ...] | None = None):
    columns = len(heading or rows[0])
    table = doc.add_table(rows=0, cols=columns)
    table.style = "Table Grid"
    for values, bold in ([(heading, True)] if heading else []) + [(r, False) for r in rows]:
        cells = table.add_row().cells
        for cell, value in zip(cells, values):
            cell.text = value
            if bold:
                for run in cell.paragraphs[0].runs:
                    run.bold = True
    if widths:
        for row in table.rows:
            for cell, width in zip(row.cells, widths):
                cell.width = Cm(width)
    return table


def _pairs(doc: DocxDocument, values: list[tuple[str, object]]) -> None:
    if values:
        _table(doc, [(name, report.plain(value)) for name, value in values], widths=(5.0, 12.0))


def _item(doc: DocxDocument, item: RecordItem) -> None:
    facts = [x for x in (item.backend, item.model, report.duration(item.duration_s)) if x]
    label = item.kind.replace("_", " ") + (f" {item.stage_iteration}" if item.stage_iteration is not None else "")
    if item.output_index is not None:
        label += f" (output {item.output_index})"
    title = doc.add_paragraph()
    title.add_run(f"#{item.seq} {label}").bold = True
    if facts:
        title.add_run(" · " + " · ".join(facts))
    if item.kind == "interception_iteration":
        doc.add_paragraph(f"{report.language_pair(item)}: see the Stille Post table")
    elif item.content:
        doc.add_paragraph(item.content)
    for ref in item.files:
        sha = f", sha256 {ref.sha256}" if ref.sha256 else ""
        line = doc.add_paragraph().add_run(f"{ref.role or 'file'}: {ref.path} ({report.media_type(ref)}, "
                                           f"{ref.bytes} bytes{sha})")
        line.font.size = Pt(8)
    for caption, values in (("parameters", item.parameters), ("recorded", report.shown(item.metadata))):
        if values:
            label = doc.add_paragraph().add_run(caption)
            label.bold, label.font.size = True, Pt(8)
            _pairs(doc, report.flatten(values))


def _step(doc: DocxDocument, step: Step) -> None:
    doc.add_heading(step.title, level=2)
    for item in step.items:
        _item(doc, item)
    for check in step.checks:
        severity = check.metadata.get("severity")
        doc.add_paragraph(f"check {check.content}" + (f" ({severity})" if severity else ""))


def _picture(doc: DocxDocument, path: Path, media_type: str) -> None:
    if media_type in _DOCX_PICTURES:
        doc.add_picture(str(path), width=PICTURE_WIDTH)
        return
    buffer = io.BytesIO()  # e.g. WebP: Word takes PNG
    with Image.open(path) as image:
        image.save(buffer, format="PNG")
    buffer.seek(0)
    doc.add_picture(buffer, width=PICTURE_WIDTH)


def write(record: Record, target: Path, paths: StagePaths) -> None:
    doc = Document()
    doc.core_properties.title = record.title[:255]
    doc.core_properties.subject = f"stageflow research record {record.key} ({record.domain})"
    doc.core_properties.author = "stageflow"
    doc.add_heading(record.title, level=0)
    _table(doc, [("key", record.key), ("domain", record.domain), ("status", record.status),
                 ("created", record.created.isoformat()), ("runs", ", ".join(record.run_ids) or "-"),
                 ("items", str(len(record.items)))], widths=(4.0, 13.0))
    prompt = report.prompt(record)
    if prompt and prompt != record.title:
        doc.add_heading("Prompt", level=1)
        doc.add_paragraph(prompt)
    doc.add_heading("Stages", level=1)
    for step in report.steps(record):
        _step(doc, step)
    rows = report.chain_rows(record)
    if rows:
        doc.add_heading("Stille Post chain", level=1)
        _table(doc, [(str(r.number), r.pair, r.text, r.backend, r.duration) for r in rows],
               heading=CHAIN_HEADINGS, widths=CHAIN_WIDTHS_CM)
    check = FileCheck(paths)
    pictures = report.images(record, check)
    if pictures:
        doc.add_heading("Images", level=1)
    for media in pictures:
        try:
            _picture(doc, media.path, media.media_type)
        except Exception as exc:  # noqa: BLE001 - one unreadable picture must not lose the document
            doc.add_paragraph(f"(not embeddable: {type(exc).__name__})")
        doc.add_paragraph(f"{media.ref.path} · item #{media.item.seq} {media.item.kind} · sha256 {media.ref.sha256}")
    errors = [i for i in record.items if i.kind == "pipeline_error" and i.stage == "pipeline"]
    if errors:
        doc.add_heading("Errors", level=1)
        for item in errors:
            doc.add_paragraph(f"#{item.seq} run {item.run_id}: {item.content}")
    doc.add_heading("Parameters", level=1)
    if record.parameters:
        _pairs(doc, report.flatten(record.parameters))
    else:
        doc.add_paragraph("none recorded")
    doc.save(str(target))
