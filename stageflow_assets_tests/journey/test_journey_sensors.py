"""The journey's sensors and its block in Dagster's terms, on a temp instance: the prompts inbox
sensor with `build_sensor_context`, journeys run in-process (the real assets, offline), and the
run-status sensors writing the record when a run ends."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.definitions import defs
from stageflow_assets.journey import stage_dirs
from stageflow_assets.journey.checks import SECTION_86A_CHECK
from stageflow_assets.journey.partitions import journey_partitions
from stageflow_assets.journey.registry import inbox_journey_key, load_journey, new_journey_key, register_journey
from stageflow_assets.journey.resources import JourneySettings, no_chat_endpoint
from stageflow_assets.journey.sensors import journey_record_sensors, prompts_inbox_sensor
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets_tests.conftest import APERTIUM

PARTITIONS = journey_partitions.name


def drop(store, name: str, text: str, age: float = 60.0) -> Path:
    inbox = store.paths.inbox("prompts")
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_text(text, encoding="utf-8")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def tick(instance, store, cursor=None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                 resources={"storage": store}, cursor=cursor) as context:
        result = prompts_inbox_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_prompt_files_become_journeys_and_runs(instance, store):
    lake = drop(store, "lake.txt", "A quiet lake at dawn\n")
    castle = drop(store, "castle.json", json.dumps({
        "prompt": "Eine Burg im Nebel", "lang": "de", "via": "es,pt", "outputs": ["image:256x256", "music:3s"],
        "safety": "kids", "seed": 11}))
    result = tick(instance, store)
    keys = {inbox_journey_key(lake), inbox_journey_key(castle)}
    assert {r.partition_key for r in result.run_requests} == keys
    assert all(r.tags[SOURCE_TAG] == "inbox" and r.tags[JOB_TAG] == r.partition_key and r.run_key == r.partition_key
               for r in result.run_requests)
    assert set(instance.get_dynamic_partitions(PARTITIONS)) == keys

    txt = load_journey(store.paths, inbox_journey_key(lake))
    assert (txt.prompt, txt.lang, txt.interception, txt.outputs, txt.safety, txt.source) == (
        "A quiet lake at dawn", "en", "stille-post", ["image"], "youth", "inbox")
    again = load_journey(store.paths, inbox_journey_key(lake))
    assert txt.seed == again.seed  # from the content: the same file is the same journey
    js = load_journey(store.paths, inbox_journey_key(castle))
    assert (js.lang, js.via, js.outputs, js.safety, js.seed) == ("de", ["es", "pt"], ["image:256x256", "music:3s"],
                                                                 "kids", 11)

    assert tick(instance, store, result.cursor).run_requests == []
    lake.touch()  # dropped again, same content: that journey exists
    os.utime(lake, (time.time() - 60, time.time() - 60))
    assert tick(instance, store, result.cursor).run_requests == []


def test_bad_prompt_files_are_skipped_with_a_warning(instance, store):
    drop(store, "empty.txt", "   \n")
    drop(store, "broken.json", "{not json")
    drop(store, "odd.json", json.dumps({"prompt": "a cat", "colour": "red"}))
    drop(store, "badout.json", json.dumps({"prompt": "a cat", "outputs": ["sculpture"]}))
    drop(store, "fresh.txt", "a dog", age=0)  # still being written: next tick
    drop(store, "notes.md", "a bird")
    result = tick(instance, store)
    assert result.run_requests == [] and not result.dynamic_partitions_requests


def run_journey_in_process(instance, store, prompt: str, **options) -> tuple[str, dg.ExecuteInProcessResult]:
    key = new_journey_key()
    register_journey(store.paths, key, prompt=prompt, **{"lang": "en", "seed": 3, **options})
    instance.add_dynamic_partitions(PARTITIONS, [key])
    resources = {"storage": store, "io_manager": StageManifestIOManager(store=store),
                 "claude": ClaudeResource(api_key=""), "chat": no_chat_endpoint(), "journey_settings": JourneySettings()}
    result = defs.resolve_job_def("journey_job").execute_in_process(
        instance=instance, partition_key=key, resources=resources, raise_on_error=False,
        tags={JOB_TAG: key})
    return key, result


def record_sensor_writes(instance, store, result, status: dg.DagsterRunStatus, event) -> dict:
    (sensor,) = [s for s in journey_record_sensors if s.name.endswith(status.value.lower())]
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=instance, dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=event, resources={"storage": store})
    sensor(context)
    key = result.dagster_run.tags["dagster/partition"]
    path = store.paths.job_dir(stage_dirs.DOMAIN, key) / stage_dirs.RECORD_DIR / f"{key}.json"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.skipif(not APERTIUM.is_file(), reason="Apertium is not installed (make install)")
def test_a_journey_run_then_the_run_status_sensor_writes_its_record(instance, store):
    key, result = run_journey_in_process(instance, store, "A red kite over green hills", iterations=2,
                                         outputs=["image:64x64"])
    assert result.success
    for asset in ("journey_prompt", "intercepted_prompt", "output_clearance", "journey_media"):
        assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None, asset
    media = instance.get_latest_materialization_event(dg.AssetKey("journey_media")).asset_materialization
    assert media.partition == key and "data:image/jpeg;base64," in media.metadata["preview"].value
    assert media.metadata["output_1"].value.endswith("1.image.png")
    hops = instance.get_latest_materialization_event(dg.AssetKey("intercepted_prompt")).asset_materialization
    assert hops.metadata["preview"].value.count("| apertium |") == 2  # the iterations as a table

    record = record_sensor_writes(instance, store, result, dg.DagsterRunStatus.SUCCESS, result.get_run_success_event())
    assert record["key"] == key and record["status"] == "success" and record["run_ids"] == [result.run_id]
    assert [i["kind"] for i in record["items"]].count("interception_iteration") == 2


def test_a_block_materializes_stage_1_fails_its_check_and_runs_nothing_else(instance, store):
    key, result = run_journey_in_process(instance, store, "Heil Hitler on a banner")
    assert not result.success
    prompt = instance.get_latest_materialization_event(dg.AssetKey("journey_prompt")).asset_materialization
    assert prompt.partition == key and prompt.metadata["blocked"].value is True
    assert "Heil Hitler" in prompt.metadata["what_matched"].value
    (check,) = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    evaluation = check.event_specific_data
    assert evaluation.check_name == SECTION_86A_CHECK and not evaluation.passed
    for asset in ("intercepted_prompt", "output_clearance", "journey_media"):
        assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is None, asset
    failed_steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failed_steps == ["journey_prompt"]  # the rest were never started

    record = record_sensor_writes(instance, store, result, dg.DagsterRunStatus.FAILURE, result.get_run_failure_event())
    assert record["status"] == "blocked" and record["items"][-1]["kind"] == "blocked"
