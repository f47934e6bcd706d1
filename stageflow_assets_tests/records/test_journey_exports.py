"""A journey's record from its stage dirs, and every export of it opened by a real reader."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from importlib.resources import files

import dagster as dg
import docx
import jsonschema
import pytest
from lxml import etree
from rocrate.rocrate import ROCrate

from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.records import export_pdf
from stageflow_assets.records.build import UnknownRecord, record_for
from stageflow_assets.records.exports import FORMATS, ExportError, export
from stageflow_assets.records.models import FileRef, Record, RecordItem
from stageflow_assets.records.tracker import Tracker
from stageflow_assets_tests.records.conftest import CHAIN, PROMPT, RUN_ID, SECRET_KEY, SECRET_PASSWORD
from stageflow_assets_tests.records.readers import (
    docx_text, pdf_fonts, pdf_images, pdf_table_rows, pdf_text, squeeze, unzip,
)

SCHEMAS = files("stageflow_assets.records") / "schema"
CHAIN_HEADINGS = ("#", "languages", "text", "backend", "duration")
EXPECTED_ROWS = [(str(n), f"{src} → {dst}", text, f"apertium, {src}-{dst}", f"{0.25 + n / 100:.2f} s")
                 for n, (src, dst, text) in enumerate(CHAIN, start=1)]


@pytest.fixture
def record(journey, instance) -> Record:
    return record_for(instance, journey.key, journey.paths)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_record_reads_every_stage_dir_in_order(journey, record):
    assert (record.key, record.domain, record.title, record.status) == (journey.key, "journey", PROMPT, "success")
    assert [i.seq for i in record.items] == list(range(1, 18))
    assert record.run_ids == [RUN_ID]
    hops = [i for i in record.items if i.kind == "interception_iteration"]
    assert [(h.stage_iteration, h.content) for h in hops] == [(n, text) for n, (_, _, text) in enumerate(CHAIN, 1)]
    image = next(i for i in record.items if i.kind == "output_image").files[0]
    # named without a checksum by its stage: the record completes it from the file
    assert (image.sha256, image.bytes, image.media_type) == (_sha(journey.image), journey.image.stat().st_size,
                                                            "image/png")
    assert journey.paths.absolute(image.path) == journey.image
    assert record.parameters["perspective"] == "stille_post" and record.parameters["iterations"] == 6


def test_credentials_are_redacted_in_the_record(record):
    dumped = record.model_dump_json()
    assert SECRET_KEY not in dumped and SECRET_PASSWORD not in dumped
    assert record.parameters["llm"] == {"base_url": "https://researcher:***@llm.example.org/v1", "api_key": "***"}
    translation = next(i for i in record.items if i.kind == "translation")
    assert translation.parameters["api_key"] == "***" and translation.parameters["temperature"] == 0.2


def test_a_run_id_gives_that_runs_items_only(journey, instance):
    other = Tracker(start_seq=100, run_id="another-run")
    other.add("pipeline_start", "1")
    extra = journey.paths.job_dir("journey", journey.key) / "05_retry"
    extra.mkdir()
    other.write(extra)

    @dg.op
    def noop() -> None:
        pass

    @dg.job(tags={"stageflow/domain": "journey"})
    def journey_like():
        noop()

    journey_like.execute_in_process(instance=instance, run_id=RUN_ID, tags={JOB_TAG: journey.key})
    whole = record_for(instance, journey.key, journey.paths)
    one_run = record_for(instance, RUN_ID, journey.paths)
    assert len(whole.items) == 18 and whole.run_ids == [RUN_ID]
    assert one_run.key == RUN_ID and len(one_run.items) == 17
    assert {i.run_id for i in one_run.items} == {RUN_ID}


def test_unknown_keys_and_run_ids(journey, instance):
    for name in ("no-such-journey", "../etc", "3f1e0b7a-0000-4000-8000-000000000000"):
        with pytest.raises(UnknownRecord):
            record_for(instance, name, journey.paths)


def test_json_validates_against_the_shipped_schema(journey, record, tmp_path):
    path = export(record, "json", tmp_path, journey.paths)
    assert path == tmp_path / f"{journey.key}.json"
    schema = json.loads((SCHEMAS / "record.schema.json").read_text())
    data = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(data)
    assert Record.model_validate(data) == record
    # the schema describes the model's fields, no more and no fewer
    assert set(schema["properties"]) == set(Record.model_fields)
    assert set(schema["$defs"]["item"]["properties"]) == set(RecordItem.model_fields)
    assert set(schema["$defs"]["file"]["properties"]) == set(FileRef.model_fields)
    broken = dict(data, items=[dict(data["items"][0], kind="not_a_kind")])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_xml_validates_against_the_shipped_xsd(journey, record, tmp_path):
    path = export(record, "xml", tmp_path, journey.paths)
    xsd = etree.XMLSchema(etree.parse(str(SCHEMAS / "record.xsd")))
    doc = etree.parse(str(path))
    xsd.assertValid(doc)
    ns = {"r": "urn:stageflow:research-record:1"}
    assert doc.getroot().get("key") == journey.key
    assert doc.findtext("r:title", namespaces=ns) == PROMPT
    hops = doc.findall("r:items/r:item[@kind='interception_iteration']", ns)
    assert [h.findtext("r:content", namespaces=ns) for h in hops] == [text for _, _, text in CHAIN]
    assert hops[2].find("r:parameters/r:value[@name='target_language']", ns).text == "zh"
    assert doc.find("r:parameters/r:value[@name='llm.api_key']", ns).text == "***"
    image = doc.find("r:items/r:item[@kind='output_image']/r:files/r:file", ns)
    assert image.get("sha256") == _sha(journey.image)


def test_pdf_report_has_the_prompt_every_iteration_and_the_chain_table(journey, record, tmp_path):
    path = export(record, "pdf", tmp_path, journey.paths)
    text = squeeze(pdf_text(path))
    assert squeeze(PROMPT) in text
    for _, _, hop in CHAIN:
        assert squeeze(hop) in text, hop
    rows = pdf_table_rows(path, CHAIN_HEADINGS)
    assert [tuple(squeeze(c) for c in row) for row in rows] == \
        [tuple(squeeze(c) for c in row) for row in EXPECTED_ROWS]
    assert pdf_images(path) == [(64, 48)]
    fonts = pdf_fonts(path)
    assert "DejaVuSans" in fonts and "DroidSansFallback" in fonts  # the CJK hop needs the fallback
    assert "stille_post" in text and "***" in text


def test_pdf_without_cjk_needs_no_fallback_font_and_a_missing_font_is_one_line(journey, record, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setattr(export_pdf, "FALLBACK_FONT", (tmp_path / "absent.ttf", "fonts-droid-fallback"))
    with pytest.raises(ExportError, match="install the Debian package fonts-droid-fallback"):
        export(record, "pdf", tmp_path / "cjk", journey.paths)
    latin = record.model_copy(update={"items": [i for i in record.items if i.stage_iteration != 3]})
    path = export(latin, "pdf", tmp_path / "latin", journey.paths)
    assert "DroidSansFallback" not in pdf_fonts(path)
    assert len(pdf_table_rows(path, CHAIN_HEADINGS)) == 5


def test_docx_has_a_metadata_table_one_row_per_iteration_and_the_picture(journey, record, tmp_path):
    path = export(record, "docx", tmp_path, journey.paths)
    document = docx.Document(str(path))
    tables = [[tuple(c.text for c in row.cells) for row in t.rows] for t in document.tables]
    assert ("key", journey.key) in tables[0] and ("domain", "journey") in tables[0]
    chain = next(t for t in tables if t[0] == CHAIN_HEADINGS)
    assert chain[1:] == EXPECTED_ROWS
    assert len(document.inline_shapes) == 1
    with zipfile.ZipFile(path) as package:
        pictures = [package.read(n) for n in package.namelist() if n.startswith("word/media/")]
    assert [hashlib.sha256(p).hexdigest() for p in pictures] == [_sha(journey.image)]
    assert document.core_properties.title == PROMPT


def test_ro_crate_is_a_provenance_run_crate_with_the_media_inside(journey, record, tmp_path):
    path = export(record, "ro-crate", tmp_path, journey.paths)
    assert path.name == f"{journey.key}.crate.zip"
    crate = ROCrate(unzip(path, tmp_path / "crate"))
    profiles = {p.id if hasattr(p, "id") else p["@id"] for p in crate.root_dataset["conformsTo"]}
    assert {"https://w3id.org/ro/wfrun/provenance/0.5", "https://w3id.org/ro/wfrun/workflow/0.5",
            "https://w3id.org/ro/wfrun/process/0.5"} <= profiles
    workflow = crate.mainEntity
    assert "ComputationalWorkflow" in workflow.type and "HowTo" in workflow.type
    actions = crate.get_by_type("CreateAction")
    steps = [a for a in actions if a["instrument"].id != workflow.id]
    assert [a["name"] for a in steps] == ["Stage 1: translation and safety", "Stage 2: interception",
                                         "Stage 3: output safety", "Stage 4: media"]
    for action in steps:
        assert action["startTime"] <= action["endTime"]
        assert action["instrument"].type == "SoftwareApplication"
    interception = steps[1]
    parameters = {(v["name"], v["value"]) for v in interception["object"]}
    assert ("#8 target_language", "zh") in parameters
    assert {v["value"] for v in interception["result"]} >= {text for _, _, text in CHAIN}
    media = steps[3]["result"]
    inside = {m.id: tmp_path / "crate" / m.id for m in media}
    assert {p.name for p in inside.values()} == {"image.png", "music.wav"}
    for entity_id, file in inside.items():
        assert file.is_file() and crate.get(entity_id)["sha256"] == _sha(file)
    assert [c["object"].id for c in crate.get_by_type("ControlAction")] == [a.id for a in steps]
    organize = crate.get_by_type("OrganizeAction")[0]
    assert organize["result"].id == crate.root_dataset["mentions"][0].id
    assert organize["instrument"]["name"] == "stageflow on Dagster"
    preview = (tmp_path / "crate" / "ro-crate-preview.html").read_text(encoding="utf-8")
    assert PROMPT in preview and CHAIN[2][2] in preview and "files/journey/" in preview


def test_no_export_holds_a_credential(journey, record, tmp_path):
    for fmt in FORMATS:
        path = export(record, fmt, tmp_path, journey.paths)
        if fmt == "pdf":
            content = pdf_text(path)
        elif fmt == "docx":
            content = docx_text(path)
        elif fmt == "ro-crate":
            unzip(path, tmp_path / "all")
            content = "".join(p.read_text(encoding="utf-8", errors="replace")
                              for p in (tmp_path / "all").rglob("*") if p.is_file())
        else:
            content = path.read_text(encoding="utf-8")
        assert SECRET_KEY not in content and SECRET_PASSWORD not in content, fmt
        assert "***" in content, fmt


def test_exports_are_quick(journey, record, tmp_path):
    for fmt in FORMATS:  # warm: imports and font files read once
        export(record, fmt, tmp_path / "warm", journey.paths)
    took = {}
    for fmt in FORMATS:
        start = time.perf_counter()
        export(record, fmt, tmp_path, journey.paths)
        took[fmt] = time.perf_counter() - start
    print({k: round(v, 3) for k, v in took.items()})
    assert all(took[f] < 1.0 for f in FORMATS if f != "pdf"), took
    assert took["pdf"] < 4.0, took  # parsing and subsetting two TrueType fonts, one of 4 MB
