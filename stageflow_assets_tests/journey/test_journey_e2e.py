"""End to end through the real `stageflow journey` CLI, offline: Apertium for translation and
Stille Post, the procedural image and music generators, the real safety lists, a Dagster run
on the session's own instance, and the research record the CLI writes when the run ends."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from stageflow_assets.journey import stage_dirs
from stageflow_assets_tests.conftest import APERTIUM, run_cli

# no LLM, no ComfyUI, whatever the developer's shell has set
OFFLINE = {"ANTHROPIC_API_KEY": "", "STAGEFLOW_LLM_URL": "", "STAGEFLOW_LLM_MODEL": "", "STAGEFLOW_COMFYUI_URL": ""}
pytestmark = pytest.mark.skipif(not APERTIUM.is_file(), reason="Apertium is not installed (make install)")


def journey(*args: str):
    return run_cli("journey", *args, env=OFFLINE)


def job_dir(key: str) -> Path:
    return Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / key


def record_of(key: str) -> dict:
    return json.loads((job_dir(key) / stage_dirs.RECORD_DIR / f"{key}.json").read_text(encoding="utf-8"))


def kinds(record: dict) -> list[str]:
    return [item["kind"] for item in record["items"]]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    out = tmp_path_factory.mktemp("lake_out")
    result = journey("A quiet lake at dawn with mountains", "--lang", "en", "--interception", "stille-post",
                     "--iterations", "6", "--output", "image", "--output", "music:4s", "--seed", "7",
                     "--out", str(out))
    return out, result


def test_stille_post_journey_writes_its_media_and_record(lake):
    out, result = lake
    assert result.returncode == 0, result.stderr
    (key,) = result.value("journey")
    assert result.stdout.splitlines()[0] == f"journey: {key}"
    assert len(result.value("run")) == 1 and not result.error_lines
    wrote = [Path(p) for p in result.value("wrote")]
    assert wrote == [out / f"{key}.1.image.png", out / f"{key}.2.music.wav"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in wrote)  # at the top of --out
    assert wrote[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and wrote[1].read_bytes()[:4] == b"RIFF"

    record = record_of(key)
    assert result.value("recorded") == [str(job_dir(key) / stage_dirs.RECORD_DIR / f"{key}.json")]
    assert record["status"] == "success" and record["title"] == "A quiet lake at dawn with mountains"
    assert record["parameters"]["seed"] == 7 and record["parameters"]["interception"] == "stille-post"
    items = record["items"]
    assert [i["seq"] for i in items] == list(range(1, len(items) + 1))  # one sequence across the stages
    assert kinds(record)[:4] == ["pipeline_start", "user_input", "safety_check", "translation"]
    assert kinds(record)[-1] == "pipeline_complete"
    hops = [i for i in items if i["kind"] == "interception_iteration"]
    assert [h["stage_iteration"] for h in hops] == [1, 2, 3, 4, 5, 6]
    assert all(h["backend"] == "apertium" and h["model"] and h["parameters"]["mode"] for h in hops)
    assert hops[0]["parameters"]["source"] == "en" and hops[-1]["parameters"]["target"] == "en"
    (final,) = [i for i in items if i["kind"] == "interception_final"]
    assert final["content"] == hops[-1]["content"]
    assert [i["stage"] for i in items if i["kind"] == "stage_transition"] == ["2", "3", "4"]
    checks = [i for i in items if i["kind"] == "output_safety_check"]
    assert [c["output_index"] for c in checks] == [1, 2]
    image, music = (next(i for i in items if i["kind"] == kind) for kind in ("output_image", "output_music"))
    for item, copied in ((image, wrote[0]), (music, wrote[1])):
        (ref,) = item["files"]
        assert ref["sha256"] == sha256(copied) and ref["bytes"] == copied.stat().st_size
        assert item["backend"] == "offline" and item["model"] and item["parameters"]["seed"] == 7
    assert image["parameters"]["prompt"] == final["content"]  # the media are made from the intercepted text
    assert music["parameters"]["seconds"] == 4.0


def test_the_same_seed_gives_a_byte_identical_image(lake, tmp_path):
    out, first = lake
    result = journey("A quiet lake at dawn with mountains", "--lang", "en", "--interception", "stille-post",
                     "--iterations", "6", "--seed", "7", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (key,) = result.value("journey")
    assert key != first.value("journey")[0]  # a new journey partition every time
    (again,) = [Path(p) for p in result.value("wrote")]
    assert again.read_bytes() == (out / f"{first.value('journey')[0]}.1.image.png").read_bytes()


def test_a_86a_prompt_is_blocked_at_stage_1(tmp_path):
    result = journey("A crowd shouting Sieg Heil in a square", "--lang", "en", "--interception", "stille-post",
                     "--output", "image", "--out", str(tmp_path / "out"))
    assert result.returncode == 3, result.stderr
    (key,) = result.value("journey")
    assert result.stdout.splitlines()[0] == f"journey: {key}" and result.value("wrote") == []
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("stageflow: blocked at stage 1: ") and "Sieg Heil" in last
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (job_dir(key) / stage_dirs.INTERCEPTION.dir_name).exists()  # nothing downstream ran
    record = record_of(key)
    assert record["status"] == "blocked"
    assert kinds(record) == ["pipeline_start", "user_input", "safety_check", "blocked"]
    assert "Sieg Heil" in record["items"][-1]["content"]


def test_a_german_86a_prompt_is_blocked_offline_before_any_translation(tmp_path):
    result = journey("Eine Fahne mit einem Hakenkreuz über dem Dorf", "--lang", "de", "--interception",
                     "stille-post", "--out", str(tmp_path))
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("stageflow: blocked at stage 1: ")
    record = record_of(result.value("journey")[0])
    assert "translation" not in kinds(record) and kinds(record)[-1] == "blocked"


def test_a_clean_german_prompt_offline_says_what_to_set(tmp_path):
    result = journey("Ein ruhiger See am Morgen", "--lang", "de", "--interception", "stille-post",
                     "--out", str(tmp_path))
    assert result.returncode == 2, result.stderr
    (line,) = result.error_lines
    assert "de→en" in line and "ANTHROPIC_API_KEY" in line and "STAGEFLOW_LLM_URL" in line
    assert "passed the §86a check" in line
    record = record_of(result.value("journey")[0])
    assert kinds(record) == ["pipeline_start", "user_input", "safety_check", "pipeline_error"]
    assert record["status"] == "failure" and not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def pirate(tmp_path_factory):
    out = tmp_path_factory.mktemp("pirate_out")
    result = journey("A pirate with a pistol on a ship", "--lang", "en", "--interception", "stille-post",
                     "--via", "es", "--safety", "kids", "--out", str(out))
    return out, result


def test_kids_level_blocks_at_stage_3(pirate):
    out, result = pirate
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("stageflow: blocked at stage 3: ") and "pistol" in last
    (key,) = result.value("journey")
    assert not (job_dir(key) / stage_dirs.MEDIA.dir_name).exists() and not any(out.iterdir())
    record = record_of(key)
    (blocked,) = [i for i in record["items"] if i["kind"] == "output_blocked"]
    assert blocked["output_index"] == 1 and blocked["stage"] == "3" and "pistol" in blocked["content"]
    assert [i["stage_iteration"] for i in record["items"] if i["kind"] == "interception_iteration"] == [1, 2]
    assert "pipeline_complete" not in kinds(record)


def test_a_stage_3_block_is_the_record_status(pirate):
    _, result = pirate
    assert record_of(result.value("journey")[0])["status"] == "blocked"


def test_stageflow_export_writes_the_journey_record(lake, tmp_path):
    _, made = lake
    (key,) = made.value("journey")
    result = run_cli("export", key, "--format", "json", "--format", "xml", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.value("wrote") == [str(tmp_path / f"{key}.json"), str(tmp_path / f"{key}.xml")]
    exported = json.loads((tmp_path / f"{key}.json").read_text(encoding="utf-8"))
    assert exported["key"] == key and exported["domain"] == "journey"
    assert exported["items"] == record_of(key)["items"]
    assert kinds(exported).count("interception_iteration") == 6


def test_every_export_of_a_cli_journey_opens_in_a_real_reader(lake, tmp_path):
    """The journey the CLI made, exported in every format and read back: pdftotext finds the prompt
    and each iteration's text and the chain table has one row per iteration, python-docx reads the
    same rows, the XML validates against the shipped XSD, rocrate loads the crate with one
    CreateAction per stage and the media inside."""
    import zipfile
    from importlib.resources import files

    import docx
    from lxml import etree
    from rocrate.rocrate import ROCrate

    from stageflow_assets_tests.records.readers import pdf_table_rows, pdf_text, squeeze, unzip

    _, made = lake
    (key,) = made.value("journey")
    result = run_cli("export", key, *[a for f in ("json", "xml", "pdf", "docx", "ro-crate") for a in ("--format", f)],
                     "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(Path(p).name for p in result.value("wrote")) == sorted(
        f"{key}.{ext}" for ext in ("json", "xml", "pdf", "docx", "crate.zip"))
    hops = [i for i in record_of(key)["items"] if i["kind"] == "interception_iteration"]
    assert len(hops) == 6
    # each row: #, languages, text, "backend, model", duration
    expected = [(str(h["stage_iteration"]), h["content"], f"{h['backend']}, {h['model']}") for h in hops]

    text = squeeze(pdf_text(tmp_path / f"{key}.pdf"))
    assert squeeze("A quiet lake at dawn with mountains") in text
    assert all(squeeze(h["content"]) in text for h in hops)
    rows = pdf_table_rows(tmp_path / f"{key}.pdf", ("#", "languages", "text", "backend", "duration"))
    assert [(r[0], squeeze(r[2]), squeeze(r[3])) for r in rows] == [(n, squeeze(t), squeeze(b)) for n, t, b in expected]

    document = docx.Document(str(tmp_path / f"{key}.docx"))
    chain = next(t for t in document.tables if tuple(c.text for c in t.rows[0].cells)[0] == "#")
    assert [(r.cells[0].text, r.cells[2].text, r.cells[3].text) for r in chain.rows[1:]] == expected
    assert len(document.inline_shapes) == 1  # the image

    schema = etree.XMLSchema(etree.parse(str(files("stageflow_assets.records") / "schema" / "record.xsd")))
    assert schema.validate(etree.parse(str(tmp_path / f"{key}.xml"))), schema.error_log

    crate = ROCrate(unzip(tmp_path / f"{key}.crate.zip", tmp_path / "crate"))
    steps = [a for a in crate.get_by_type("CreateAction") if a["instrument"].id != crate.mainEntity.id]
    assert len(steps) == 4
    with zipfile.ZipFile(tmp_path / f"{key}.crate.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("image.png") for n in names) and any(n.endswith("music.wav") for n in names)
