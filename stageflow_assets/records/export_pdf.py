"""The record as a readable PDF report (fpdf2): title and prompt, each stage, the Stille Post
chain as a table, the images, the parameters.

DejaVu Sans covers Latin, Greek and Cyrillic; Droid Sans Fallback is added for the scripts it
lacks (CJK) whenever the record holds any.
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from stageflow_assets.core.paths import StagePaths
from stageflow_assets.records import report
from stageflow_assets.records.models import Record, RecordItem
from stageflow_assets.records.report import FileCheck, Step

FONT_DIR = Path("/usr/share/fonts/truetype")
MAIN_FONT = (FONT_DIR / "dejavu" / "DejaVuSans.ttf", "fonts-dejavu-core")
BOLD_FONT = (FONT_DIR / "dejavu" / "DejaVuSans-Bold.ttf", "fonts-dejavu-core")
FALLBACK_FONT = (FONT_DIR / "droid" / "DroidSansFallbackFull.ttf", "fonts-droid-fallback")
CHAIN_HEADINGS = ("#", "languages", "text", "backend", "duration")
CHAIN_WIDTHS = (10, 28, 100, 34, 18)
IMAGE_BOX_MM = 90


class _Report(FPDF):
    record_key = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("main", size=8)
        self.cell(0, 8, f"{self.record_key} · page {self.page_no()}", align="C")


def _font(pdf: FPDF, name: str, style: str, font: tuple[Path, str]) -> None:
    path, package = font
    if not path.is_file():
        from stageflow_assets.records.exports import ExportError

        raise ExportError(f"PDF export needs the font {path}: install the Debian package {package} "
                          f"(apt-get install {package})")
    pdf.add_font(name, style, str(path))


def _texts(record: Record) -> str:
    parts = [record.title, *(report.plain(v) for _, v in report.flatten(record.parameters))]
    for item in record.items:
        parts += [item.content or "", item.stage, item.backend or "", item.model or ""]
        parts += [f"{k} {report.plain(v)}" for k, v in report.flatten({**item.parameters, **item.metadata})]
        parts += [f.path for f in item.files]
    return "".join(parts)


def _document(record: Record) -> _Report:
    pdf = _Report(format="A4")
    pdf.record_key = record.key
    _font(pdf, "main", "", MAIN_FONT)
    _font(pdf, "main", "B", BOLD_FONT)
    covered = pdf.fonts["main"].cmap
    if any(ord(ch) not in covered for ch in set(_texts(record)) if ch.isprintable() and not ch.isspace()):
        _font(pdf, "fallback", "", FALLBACK_FONT)
        pdf.set_fallback_fonts(["fallback"], exact_match=False)
    pdf.set_title(record.title)
    pdf.set_subject(f"stageflow research record {record.key} ({record.domain})")
    pdf.set_creator("stageflow")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_margins(10, 12, 10)
    return pdf


def _heading(pdf: FPDF, text: str, size: float = 14) -> None:
    if pdf.will_page_break(25):  # a heading stays with what follows it
        pdf.add_page()
    else:
        pdf.ln(3)
    pdf.set_font("main", "B", size)
    pdf.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.set_font("main", size=10)


def _line(pdf: FPDF, text: str, size: float = 9, bold: bool = False) -> None:
    pdf.set_font("main", "B" if bold else "", size)
    pdf.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")


def _pairs(pdf: FPDF, pairs: list[tuple[str, object]], widths: tuple[int, int] = (55, 135)) -> None:
    if not pairs:
        return
    pdf.set_font("main", size=9)
    with pdf.table(col_widths=widths, first_row_as_headings=False, text_align="LEFT", v_align="TOP",
                   line_height=4.5) as table:
        for name, value in pairs:
            row = table.row()
            row.cell(str(name))
            row.cell(report.plain(value))


def _item_lines(pdf: FPDF, item: RecordItem) -> None:
    facts = [x for x in (item.backend, item.model, report.duration(item.duration_s)) if x]
    label = item.kind.replace("_", " ")
    if item.stage_iteration is not None:
        label += f" {item.stage_iteration}"
    if item.output_index is not None:
        label += f" (output {item.output_index})"
    _line(pdf, f"#{item.seq} {label}" + (f" · {' · '.join(facts)}" if facts else ""), bold=True)
    if item.kind == "interception_iteration":
        _line(pdf, f"{report.language_pair(item)}: see the Stille Post table")
    elif item.content:
        _line(pdf, item.content)
    for ref in item.files:
        sha = f", sha256 {ref.sha256}" if ref.sha256 else ""
        _line(pdf, f"{ref.role or 'file'}: {ref.path} ({report.media_type(ref)}, {ref.bytes} bytes{sha})", 8)
    for caption, values in (("parameters", item.parameters), ("recorded", report.shown(item.metadata))):
        if values:
            _line(pdf, caption, 7, bold=True)
            _pairs(pdf, report.flatten(values))
    pdf.ln(1.5)


def _step(pdf: FPDF, record: Record, step: Step) -> None:
    _heading(pdf, step.title, 12)
    for item in step.items:
        _item_lines(pdf, item)
    for check in step.checks:
        severity = check.metadata.get("severity")
        _line(pdf, f"check {check.content}" + (f" ({severity})" if severity else ""))


def _chain(pdf: FPDF, rows: list[report.ChainRow]) -> None:
    _heading(pdf, "Stille Post chain")
    pdf.set_font("main", size=9)
    with pdf.table(col_widths=CHAIN_WIDTHS, text_align="LEFT", v_align="TOP", line_height=4.5,
                   headings_style=FontFace(emphasis="BOLD", fill_color=(230, 230, 230))) as table:
        heading = table.row()
        for name in CHAIN_HEADINGS:
            heading.cell(name)
        for chain_row in rows:
            row = table.row()
            for value in (str(chain_row.number), chain_row.pair, chain_row.text, chain_row.backend, chain_row.duration):
                row.cell(value)


def _media(pdf: FPDF, record: Record, check: FileCheck) -> None:
    files = report.media_files(record, check)
    shown = [m for m in files if m.media_type.startswith("image/") and m.path is not None]
    if shown:
        _heading(pdf, "Images")
    for media in shown:
        try:
            pdf.image(str(media.path), w=IMAGE_BOX_MM, h=IMAGE_BOX_MM, keep_aspect_ratio=True)
        except Exception as exc:  # noqa: BLE001 - one unreadable picture must not lose the report
            _line(pdf, f"(not embeddable: {type(exc).__name__})")
        _line(pdf, f"{media.ref.path} · item #{media.item.seq} {media.item.kind} · sha256 {media.ref.sha256}", 8)
        pdf.ln(2)
    others = [m for m in files if m not in shown and m.ref.role != "input"]
    if others and record.domain == "journey":
        _heading(pdf, "Other media")
        for media in others:
            state = "" if media.path is not None else " (not on disk as recorded)"
            _line(pdf, f"{media.ref.path} ({media.media_type}, {media.ref.bytes} bytes){state}", 8)


def write(record: Record, target: Path, paths: StagePaths) -> None:
    pdf = _document(record)
    pdf.add_page()
    _heading(pdf, "Research record", 11)
    pdf.set_font("main", "B", 16)
    pdf.multi_cell(0, 8, record.title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    _pairs(pdf, [("key", record.key), ("domain", record.domain), ("status", record.status),
                 ("created", record.created.isoformat()), ("runs", ", ".join(record.run_ids) or "-"),
                 ("items", len(record.items))], (30, 160))
    prompt = report.prompt(record)
    if prompt and prompt != record.title:
        _heading(pdf, "Prompt")
        _line(pdf, prompt, 10)
    _heading(pdf, "Stages")
    for step in report.steps(record):
        _step(pdf, record, step)
    rows = report.chain_rows(record)
    if rows:
        _chain(pdf, rows)
    _media(pdf, record, FileCheck(paths))
    errors = [i for i in record.items if i.kind == "pipeline_error" and i.stage == "pipeline"]
    if errors:
        _heading(pdf, "Errors")
        for item in errors:
            _line(pdf, f"#{item.seq} run {item.run_id}: {item.content}")
    _heading(pdf, "Parameters")
    if record.parameters:
        _pairs(pdf, report.flatten(record.parameters))
    else:
        _line(pdf, "none recorded")
    pdf.output(str(target))
