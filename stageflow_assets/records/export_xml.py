"""The record as XML for qualitative-data-analysis software, valid against `schema/record.xsd`.

Nested parameters and metadata become flat `<value name="a.b" type="...">` pairs; lists are
JSON text.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from lxml import etree

from stageflow_assets.core.paths import StagePaths
from stageflow_assets.records.models import Record, RecordItem
from stageflow_assets.records.report import flatten

NAMESPACE = "urn:stageflow:research-record:1"
XSD = files("stageflow_assets.records") / "schema" / "record.xsd"
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _q(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _clean(text: str) -> str:
    """XML 1.0 has no place for most control characters."""
    return _NOT_XML.sub("\ufffd", text)


def _decimal(value: float) -> str:
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _typed(value: Any) -> tuple[str, str]:
    if value is None:
        return "null", ""
    if isinstance(value, bool):
        return "boolean", "true" if value else "false"
    if isinstance(value, int):
        return "integer", str(value)
    if isinstance(value, float):
        return "number", repr(value)
    if isinstance(value, str):
        return "string", value
    return "json", json.dumps(value, ensure_ascii=False, default=str)


def _values(parent: Any, tag: str, values: dict[str, Any]) -> None:
    holder = etree.SubElement(parent, _q(tag))
    for name, value in flatten(values):
        kind, text = _typed(value)
        element = etree.SubElement(holder, _q("value"), name=_clean(name), type=kind)
        element.text = _clean(text)


def _item(parent: Any, item: RecordItem) -> None:
    attrs = {"seq": str(item.seq), "time": item.time.isoformat(), "kind": item.kind, "stage": _clean(item.stage)}
    optional = {"stageIteration": item.stage_iteration, "outputIndex": item.output_index, "model": item.model,
                "backend": item.backend, "runId": item.run_id}
    attrs.update({k: _clean(str(v)) for k, v in optional.items() if v is not None})
    if item.duration_s is not None:
        attrs["durationS"] = _decimal(item.duration_s)
    element = etree.SubElement(parent, _q("item"), attrs)
    if item.content is not None:
        etree.SubElement(element, _q("content")).text = _clean(item.content)
    holder = etree.SubElement(element, _q("files"))
    for ref in item.files:
        file_attrs = {"path": _clean(ref.path)}
        for name, value in (("sha256", ref.sha256), ("bytes", ref.bytes), ("mediaType", ref.media_type),
                            ("role", ref.role)):
            if value is not None:
                file_attrs[name] = _clean(str(value))
        etree.SubElement(holder, _q("file"), file_attrs)
    _values(element, "parameters", item.parameters)
    _values(element, "metadata", item.metadata)


def to_xml(record: Record) -> Any:  # an lxml element
    root = etree.Element(_q("record"), nsmap={None: NAMESPACE}, schemaVersion=str(record.schema_version),
                         key=_clean(record.key), domain=record.domain, status=record.status,
                         created=record.created.isoformat())
    etree.SubElement(root, _q("title")).text = _clean(record.title)
    runs = etree.SubElement(root, _q("runs"))
    for run_id in record.run_ids:
        etree.SubElement(runs, _q("run"), id=_clean(run_id))
    _values(root, "parameters", record.parameters)
    items = etree.SubElement(root, _q("items"))
    for item in record.items:
        _item(items, item)
    return root


def write(record: Record, target: Path, paths: StagePaths) -> None:
    etree.ElementTree(to_xml(record)).write(str(target), xml_declaration=True, encoding="UTF-8", pretty_print=True)
