"""Records of a real subtitle job (espeak speech → Whisper → Apertium → subtitles → MKV) and a
real deck (WordNet, espeak-ng, Apertium, genanki), read back from the instance and the manifests."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib.resources import files

import dagster as dg
import docx
import jsonschema
import pytest
from lxml import etree
from rocrate.rocrate import ROCrate

from stageflow_assets.core.manifest import read_manifest
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.records.build import record_for
from stageflow_assets.records.exports import FORMATS, export
from stageflow_assets_tests.records.readers import pdf_text, squeeze, unzip

pytestmark = pytest.mark.slow  # Whisper on a few seconds of speech

SCHEMAS = files("stageflow_assets.records") / "schema"
SUBTITLE_STAGES = ["source_video", "audio", "transcript", "cues", "translation", "subtitles", "subtitled_video",
                   "subtitle_outbox"]
DECK = "Records::Food"


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.get() as inst:
        yield inst


@pytest.fixture(scope="module")
def subtitle_job(speech_video, tmp_path_factory, instance):
    from stageflow_assets.subtitles.pipeline import run_subtitles

    video = tmp_path_factory.mktemp("records_video") / "records.mp4"
    shutil.copyfile(speech_video, video)
    result = run_subtitles(instance, StageStore().paths, video, ["es"])
    return result


@pytest.fixture(scope="module")
def deck_job(tmp_path_factory, instance):
    from stageflow_assets.vocabulary.pipeline import run_vocab

    words = tmp_path_factory.mktemp("records_deck") / "food.txt"
    words.write_text("apple\nbread\nwater\nmilk\n", encoding="utf-8")
    return run_vocab(instance, StageStore().paths, words, DECK, "en", native="es")


def _validate_json_and_xml(record, tmp_path, paths) -> None:
    data = json.loads(export(record, "json", tmp_path, paths).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json.loads((SCHEMAS / "record.schema.json").read_text()),
                                    format_checker=jsonschema.FormatChecker()).validate(data)
    xsd = etree.XMLSchema(etree.parse(str(SCHEMAS / "record.xsd")))
    xsd.assertValid(etree.parse(str(export(record, "xml", tmp_path, paths))))


def test_subtitle_job_record_has_each_stage_run_with_its_backend_files_and_checks(subtitle_job, instance):
    paths = StageStore().paths
    record = record_for(instance, subtitle_job.job, paths)
    assert (record.domain, record.title, record.status) == ("subtitles", "records.mp4", "success")
    assert record.run_ids == [run_id for _, run_id in subtitle_job.runs]
    runs = [i for i in record.items if i.kind == "stage_run"]
    assert [i.stage for i in runs] == SUBTITLE_STAGES
    transcript = runs[2]
    assert transcript.backend == "faster-whisper" and transcript.model
    assert {"model", "beam_size", "compute_type"} <= set(transcript.parameters)
    assert "faster-whisper" in transcript.metadata["provider_versions"]
    manifest = read_manifest(paths.stage_dir("subtitles", subtitle_job.job, "03_transcript") / "manifest.json")
    assert [(f.path, f.sha256, f.role) for f in transcript.files] == \
        [(r.path, r.sha256, "input") for r in manifest.inputs] + \
        [(r.path, r.sha256, "output") for r in manifest.outputs]
    assert transcript.duration_s == manifest.duration_s and transcript.metadata["timings"]["asr"] > 0
    translation = runs[4]
    assert translation.metadata["partition"] == f"{subtitle_job.job}|es"
    assert translation.parameters["backend"] == "apertium" and translation.parameters["target_language"] == "es"
    checks = {i.metadata["check"]: i for i in record.items if i.kind == "qc_check"}
    assert {"qc_errors", "qc_warnings", "cue_count_matches_source"} <= set(checks)
    assert checks["qc_errors"].metadata["passed"] is True and checks["qc_errors"].stage == "subtitles"
    assert [i.kind for i in record.items if i.stage == "pipeline"].count("pipeline_complete") == 3


def test_subtitle_job_exports(subtitle_job, instance, tmp_path):
    paths = StageStore().paths
    record = record_for(instance, subtitle_job.job, paths)
    _validate_json_and_xml(record, tmp_path, paths)
    text = squeeze(pdf_text(export(record, "pdf", tmp_path, paths)))
    assert "beam_size" in text and "faster-whisper" in text and squeeze("transcript [") in text
    document = docx.Document(str(export(record, "docx", tmp_path, paths)))
    assert ("domain", "subtitles") in [tuple(c.text for c in r.cells) for r in document.tables[0].rows]

    crate = ROCrate(unzip(export(record, "ro-crate", tmp_path, paths), tmp_path / "crate"))
    steps = [a for a in crate.get_by_type("CreateAction") if a["instrument"].id != crate.mainEntity.id]
    assert [a["name"].split(" [")[0] for a in steps] == SUBTITLE_STAGES
    transcript = steps[2]
    assert any(v["name"].endswith(" beam_size") for v in transcript["object"] if "PropertyValue" in v.type)
    audio_in = [v for v in transcript["object"] if "File" in v.type]
    assert [v.id.rsplit("/", 1)[-1] for v in audio_in] == ["audio.wav"]
    whisper = [s["name"] for s in transcript["instrument"]["softwareRequirements"]]
    assert "faster-whisper" in whisper
    mkv = [v for v in steps[-1]["result"] if v.id.endswith(".mkv")]
    assert len(mkv) == 1
    inside = tmp_path / "crate" / mkv[0].id
    assert hashlib.sha256(inside.read_bytes()).hexdigest() == mkv[0]["sha256"]


def test_one_run_of_a_subtitle_job(subtitle_job, instance, tmp_path):
    paths = StageStore().paths
    language_run = next(run_id for what, run_id in subtitle_job.runs if what.startswith("subtitles ["))
    record = record_for(instance, language_run, paths)
    assert record.key == language_run and record.run_ids == [language_run]
    assert [i.stage for i in record.items if i.kind == "stage_run"] == ["translation", "subtitles"]
    assert export(record, "json", tmp_path, paths).name == f"{language_run}.json"


def test_deck_record_and_exports(deck_job, instance, tmp_path):
    paths = StageStore().paths
    record = record_for(instance, deck_job.job, paths)
    assert (record.domain, record.title, record.status) == ("vocabulary", DECK, "success")
    runs = {i.stage: i for i in record.items if i.kind == "stage_run"}
    assert {"word_list", "word_analysis", "pronunciation_audio", "card_images", "anki_deck"} <= set(runs)
    audio = runs["pronunciation_audio"]
    assert audio.backend == "espeak-ng" and audio.parameters["voice"]
    assert len([f for f in audio.files if f.role == "output" and f.path.endswith(".mp3")]) == 4
    assert runs["word_analysis"].parameters["native"] == "es"
    assert any(i.kind == "qc_check" and i.metadata["check"] == "deck_media_complete" for i in record.items)
    _validate_json_and_xml(record, tmp_path, paths)
    paths_written = [export(record, fmt, tmp_path, paths) for fmt in FORMATS]
    assert [p.name for p in paths_written] == [f"{deck_job.job}{s}" for s in
                                               (".json", ".xml", ".pdf", ".docx", ".crate.zip")]
    crate = ROCrate(unzip(paths_written[-1], tmp_path / "crate"))
    # the deck stage's package and its copy in the outbox, the same bytes
    apkg = sorted((e for e in crate.get_by_type("File") if e.id.endswith(".apkg")), key=lambda e: e.id)
    assert [e.id.split("/")[1] for e in apkg] == ["outbox", "vocabulary"]
    assert all((tmp_path / "crate" / e.id).is_file() for e in apkg)
    assert len({(tmp_path / "crate" / e.id).read_bytes() for e in apkg}) == 1
