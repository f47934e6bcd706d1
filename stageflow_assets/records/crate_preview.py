"""The crate's `ro-crate-preview.html`: the record readable in a browser, pictures from inside the crate."""

from __future__ import annotations

from html import escape

from stageflow_assets.records import report
from stageflow_assets.records.models import Record
from stageflow_assets.records.report import Step

_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #999;padding:.2em .5em;"
          "text-align:left;vertical-align:top}img{max-width:24em;display:block;margin:.5em 0}")


def _table(rows: list[tuple], heading: tuple | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in heading) + "</tr>" if heading else ""
    body = "".join("<tr>" + "".join(f"<td>{escape(report.plain(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def preview_html(record: Record, steps: list[Step], embedded: set[str]) -> str:
    parts = [f"<h1>{escape(record.title)}</h1>",
             _table([("key", record.key), ("domain", record.domain), ("status", record.status),
                     ("created", record.created.isoformat()), ("runs", ", ".join(record.run_ids))]),
             "<p>The machine-readable description is <a href=\"ro-crate-metadata.json\">ro-crate-metadata.json</a>; "
             "the full record is <a href=\"record.json\">record.json</a>.</p>", "<h2>Steps</h2>"]
    rows = []
    for step in steps:
        backends = sorted({i.backend for i in step.items if i.backend})
        seconds = sum(i.duration_s or 0 for i in step.items)
        files = [f.path for i in step.items for f in i.files if f.role != "input"]
        rows.append((step.title, step.items[0].time.isoformat(), report.duration(seconds), ", ".join(backends),
                     "\n".join(files)))
    parts.append(_table(rows, ("step", "started", "duration", "backend", "outputs")))
    chain = report.chain_rows(record)
    if chain:
        parts.append("<h2>Stille Post chain</h2>")
        parts.append(_table([(r.number, r.pair, r.text, r.backend, r.duration) for r in chain],
                            ("#", "languages", "text", "backend", "duration")))
    pictures = [f for i in record.items for f in i.files
                if report.media_type(f).startswith("image/") and f"files/{f.path}" in embedded]
    if pictures:
        parts.append("<h2>Images</h2>")
        parts += [f'<figure><img src="files/{escape(f.path)}" alt="{escape(f.path)}">'
                  f"<figcaption>{escape(f.path)}</figcaption></figure>" for f in pictures]
    if record.parameters:
        parts.append("<h2>Parameters</h2>")
        parts.append(_table(report.flatten(record.parameters)))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(record.title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
