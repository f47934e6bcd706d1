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


def test_each_job_rebuilt_from_its_domain_is_the_code_locations_job():
    """A run process imports only its job's domain (core/runs.job_named): the same steps, assets,
    checks, resources and executor as the job the UI and the daemon know by that name."""
    from stageflow_assets.core.runs import JOB_DOMAINS, job_named

    named = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert named == set(JOB_DOMAINS)
    for name in named:
        mine, theirs = job_named(name), defs.resolve_job_def(name)
        assert mine is not theirs  # built from the domain's own Definitions
        assert mine.executor_def.name == theirs.executor_def.name == "in_process"
        assert set(mine.graph.node_names()) == set(theirs.graph.node_names()), name
        assert mine.asset_layer.executable_asset_keys == theirs.asset_layer.executable_asset_keys, name
        assert set(mine.resource_defs) <= set(theirs.resource_defs), name  # the rest: other domains'
        assert mine.partitions_def == theirs.partitions_def, name
