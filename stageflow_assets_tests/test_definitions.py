import dagster as dg

from stageflow_assets.definitions import defs

EXPECTED_ASSETS = {"source_video", "audio", "transcript", "translation", "subtitles", "subtitled_video"}


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert EXPECTED_ASSETS <= keys


def test_every_asset_has_description_and_group():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.description.strip(), key
        assert node.group_name and node.group_name != "default", key


def test_partitions_job_then_job_by_language():
    graph = defs.resolve_asset_graph()
    by_name = {k.to_user_string(): graph.get(k).partitions_def for k in graph.get_all_asset_keys()}
    assert isinstance(by_name["transcript"], dg.DynamicPartitionsDefinition)
    multi = by_name["translation"]
    assert isinstance(multi, dg.MultiPartitionsDefinition)
    assert {d.name for d in multi.partitions_defs} == {"job", "lang"}
    assert by_name["subtitled_video"] == by_name["transcript"]


def test_jobs_sensors_and_in_process_executor():
    for name in ("subtitle_source_job", "subtitle_language_job", "subtitle_mux_job"):
        job = defs.resolve_job_def(name)
        assert job.executor_def.name == "in_process"
    sensors = {s.name for s in defs.sensors}
    assert {"video_inbox_sensor", "stageflow_automation"} <= sensors
