"""The journey's own pieces without a run: options checked at registration, keys, the record items
a step writes (on success and on failure), the default image backend, prompt files."""

from __future__ import annotations

import json

import pytest

from stageflow_assets.core.errors import BadInputError, ProviderError
from stageflow_assets.core.keys import KEY_PATTERN
from stageflow_assets.core.stage import StageLog, StageWriter
from stageflow_assets.journey.media_assets import output_config
from stageflow_assets.journey.recording import StageRecording
from stageflow_assets.journey.registry import inbox_journey_key, load_journey, new_journey_key, register_journey
from stageflow_assets.journey.resources import JourneySettings
from stageflow_assets.journey.sensors import options_from_file
from stageflow_assets.records.tracker import ITEMS_FILE, read_items
from stageflow_assets_tests.conftest import run_cli


@pytest.mark.parametrize("options, said", [
    ({"prompt": "  "}, "the prompt is empty"),
    ({"lang": "xx"}, "--lang xx"),
    ({"work_lang": "qqq"}, "--work-lang qqq"),
    ({"via": ["es", "zz"]}, "--via zz"),
    ({"interception": "cubism"}, "--interception cubism: use one of stille-post"),
    ({"iterations": 9}, "--iterations 9"),
    ({"safety": "toddlers"}, "--safety toddlers"),
    ({"outputs": ["sculpture"]}, "--output 'sculpture'"),
    ({"outputs": ["image"] * 9}, "at most 8"),
    ({"seed": "seven"}, "seed"),
])
def test_registration_says_what_is_wrong_in_one_line(store, options, said):
    with pytest.raises(BadInputError) as caught:
        register_journey(store.paths, new_journey_key(), **{"prompt": "a lake", "lang": "en", **options})
    assert said in caught.value.message and "\n" not in caught.value.message


def test_registration_records_the_options_with_a_seed(store):
    key = new_journey_key()
    job = register_journey(store.paths, key, prompt=" Ein See ", lang="DE", interception="Stille-Post",
                           via=["ES", "pt"], outputs=["image", "music:3s"], seed=None)
    assert KEY_PATTERN.match(key) and load_journey(store.paths, key) == job
    assert (job.prompt, job.lang, job.interception, job.via, job.safety, job.work_lang) == (
        "Ein See", "de", "stille-post", ["es", "pt"], "youth", "en")
    assert 0 <= job.seed < 2**31
    assert new_journey_key() != new_journey_key()


def writer(tmp_path) -> StageWriter:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return StageWriter(directory=tmp_path, run_id="run-1234abcd", log=StageLog(tmp_path / "stage.log"))


def test_a_step_declares_its_items_as_an_output_continuing_the_sequence(tmp_path):
    out = writer(tmp_path)
    with StageRecording("2", 5, "run-1234abcd").around(out) as rec:
        rec.transition("1")
        rec.add("interception_iteration", stage_iteration=1, content="hola")
    (path, fields), = out.declared
    assert path.name == ITEMS_FILE and fields["kind"] == "record_items"
    items = read_items(path.with_name(path.name + ".tmp-run-1234"))  # the runtime renames it into place
    assert [(i.seq, i.kind, i.stage) for i in items] == [(5, "stage_transition", "2"), (6, "interception_iteration", "2")]
    assert out.details["next_seq"] == 7 and out.details["record_items"] == 2


def test_a_failed_step_still_leaves_its_items_ending_with_the_error(tmp_path):
    out = writer(tmp_path)
    with pytest.raises(ProviderError):
        with StageRecording("4", 12, "run-1234abcd").around(out) as rec:
            rec.add("stage_transition", content="stage 3 → stage 4")
            raise ProviderError("ffmpeg died")
    items = read_items(tmp_path / ITEMS_FILE)
    assert [(i.seq, i.kind) for i in items] == [(12, "stage_transition"), (13, "pipeline_error")]
    assert items[-1].content == "ffmpeg died" and out.declared == []


def test_images_go_to_comfyui_when_it_is_configured_unless_the_spec_says_offline():
    comfy, offline = JourneySettings(image_backend="comfyui"), JourneySettings()
    assert output_config("image", comfy).backend == "comfyui"
    assert output_config("image:512x512,offline", comfy).backend == "offline"
    assert output_config("music", comfy).backend == "offline"
    assert output_config("image", offline).backend == "offline"
    with pytest.raises(BadInputError, match="multiples of 8"):
        output_config("image:500x500", comfy)


def test_prompt_files(tmp_path):
    de = tmp_path / "castle.de.txt"
    de.write_text("Eine Burg\n", encoding="utf-8")
    assert {k: v for k, v in options_from_file(de).items() if k != "seed"} == {"prompt": "Eine Burg", "lang": "de"}
    assert options_from_file(de)["seed"] == options_from_file(de)["seed"]
    assert inbox_journey_key(de) == inbox_journey_key(de) and inbox_journey_key(de).startswith("castle.de-")
    listed = tmp_path / "x.json"
    listed.write_text(json.dumps({"prompt": "a", "via": "es, pt", "outputs": "image,music"}), encoding="utf-8")
    assert options_from_file(listed)["via"] == ["es", "pt"] and options_from_file(listed)["outputs"] == ["image", "music"]
    listed.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(BadInputError, match="JSON object"):
        options_from_file(listed)


@pytest.mark.parametrize("args, said", [
    (["--lang", "xx"], "--lang xx"),
    (["--lang", "en", "--output", "hologram"], "--output 'hologram'"),
])
def test_the_cli_refuses_bad_options_before_any_run(tmp_path, args, said):
    result = run_cli("journey", "a lake", "--interception", "stille-post", "--out", str(tmp_path), *args)
    assert result.returncode == 2 and result.value("journey") == []
    (line,) = result.error_lines
    assert said in line
