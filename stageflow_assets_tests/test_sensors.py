"""The video inbox sensor, evaluated against a real (persistent, SQLite) Dagster instance.

Three levels: the sensor function itself (`build_sensor_context` + direct call), the tick as the
code server evaluates it (`evaluate_tick`, which resolves each RunRequest against the job and
checks its partition key exists once the tick's dynamic-partition requests are applied: that
check needs `instance_ref` and `definitions`), and the sensor daemon's own iteration in-process
(adds the partitions, creates the runs, deduplicates by run key).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from stageflow_assets.core.keys import job_key_for_file
from stageflow_assets.core.settings import project_root
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.definitions import defs
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.subtitles.partitions import subtitle_job_partitions
from stageflow_assets.subtitles.registry import load_job
from stageflow_assets.subtitles.sensors import SETTLE_SECONDS, video_inbox_sensor

PARTITIONS = subtitle_job_partitions.name


def inbox(store: StageStore) -> Path:
    path = store.paths.inbox("videos")
    path.mkdir(parents=True, exist_ok=True)
    return path


def settled(path: Path, age: float = 60.0) -> Path:
    """Backdate `path` as a finished copy: quiet for longer than the sensor's settle time."""
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def drop(store: StageStore, name: str, data: bytes, age: float = 60.0) -> Path:
    path = inbox(store) / name
    path.write_bytes(data)
    return settled(path, age)


def context(instance, store, cursor=None):
    return dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        definitions=defs,
        resources={"storage": store},
        cursor=cursor,
    )


def tick(instance, store, cursor=None) -> dg.SensorResult:
    """Call the sensor like a user would in a unit test; apply its partition requests like the daemon."""
    with context(instance, store, cursor) as built:  # closed here, not at garbage collection
        result = video_inbox_sensor(built)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def added_keys(result) -> list[str]:
    return [
        key
        for request in result.dynamic_partitions_requests or []
        if request.partitions_def_name == PARTITIONS
        for key in request.partition_keys
    ]


def test_new_video_becomes_a_partition_and_a_source_run(instance, store):
    video = drop(store, "Talk One.mp4", b"fake video bytes " * 100)
    job = job_key_for_file(video)
    assert job.startswith("talk-one-")

    result = tick(instance, store)

    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.partition_key == job
    assert request.run_key == job
    assert request.tags[JOB_TAG] == job
    assert request.tags["stageflow/source"] == "inbox"
    assert added_keys(result) == [job]
    assert instance.get_dynamic_partitions(PARTITIONS) == [job]
    registered = load_job(store.paths, job)
    assert Path(registered.source_path) == video.resolve()
    assert registered.original_name == "Talk One.mp4"


def test_same_cursor_means_nothing_new(instance, store):
    drop(store, "a.mp4", b"a" * 500)
    first = tick(instance, store)
    assert len(first.run_requests) == 1

    again = tick(instance, store, first.cursor)
    assert again.run_requests == []
    assert added_keys(again) == []
    assert json.loads(again.cursor) == json.loads(first.cursor)


def test_recopied_or_touched_file_keeps_its_key(instance, store, tmp_path):
    data = b"same content " * 300
    video = drop(store, "clip.mp4", data)
    first = tick(instance, store)
    (job,) = [r.partition_key for r in first.run_requests]

    # copied over again with the same content (new mtime): re-registered, same key and run key,
    # so the daemon's run-key check drops the duplicate run (see the daemon test below)
    outside = tmp_path / "clip.mp4"
    outside.write_bytes(data)
    shutil.copyfile(outside, video)
    settled(video, age=30)
    second = tick(instance, store, first.cursor)
    assert [(r.partition_key, r.run_key) for r in second.run_requests] == [(job, job)]
    assert added_keys(second) in ([], [job])
    assert instance.get_dynamic_partitions(PARTITIONS) == [job]

    # touched only
    settled(video, age=20)
    third = tick(instance, store, second.cursor)
    assert [(r.partition_key, r.run_key) for r in third.run_requests] == [(job, job)]
    assert instance.get_dynamic_partitions(PARTITIONS) == [job]


def test_replaced_content_is_a_new_job(instance, store):
    video = drop(store, "clip.mp4", b"first take " * 200)
    first = tick(instance, store)
    video.write_bytes(b"second take " * 200)
    settled(video, age=30)
    second = tick(instance, store, first.cursor)
    (old,), (new,) = [r.partition_key for r in first.run_requests], [r.partition_key for r in second.run_requests]
    assert old != new and old.startswith("clip-") and new.startswith("clip-")
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == sorted([old, new])


def test_file_still_being_written_waits_until_it_settles(instance, store):
    video = inbox(store) / "incoming.mp4"
    video.write_bytes(b"half a video")
    now = time.time()
    os.utime(video, (now, now))  # written to just now

    early = tick(instance, store)
    assert early.run_requests == []
    assert added_keys(early) == []
    assert "incoming.mp4" not in early.cursor
    assert instance.get_dynamic_partitions(PARTITIONS) == []

    with video.open("ab") as fh:
        fh.write(b" and the rest")
    settled(video, age=SETTLE_SECONDS - 1)  # still too recent
    assert tick(instance, store, early.cursor).run_requests == []
    settled(video, age=SETTLE_SECONDS + 1)  # quiet long enough
    later = tick(instance, store, early.cursor)
    assert [r.partition_key for r in later.run_requests] == [job_key_for_file(video)]


def test_hidden_files_and_directories_are_ignored(instance, store):
    drop(store, ".partial.mp4", b"being uploaded")
    (inbox(store) / "subdir").mkdir()
    settled(inbox(store) / "subdir")

    result = tick(instance, store)
    assert result.run_requests == []
    assert added_keys(result) == []
    assert ".partial" not in result.cursor and "subdir" not in result.cursor


def test_same_content_under_two_names_is_one_job(instance, store):
    """`talk.mp4` and `talk.mkv` (or `Talk.mp4`) with the same bytes map to one job key:
    the tick must add that partition once, or the daemon's insert violates the unique index on
    dynamic partitions, the tick fails, its cursor never advances, and the inbox is stuck."""
    data = b"identical " * 200
    drop(store, "talk.mkv", data)
    drop(store, "talk.mp4", data)
    result = tick(instance, store)
    job = job_key_for_file(inbox(store) / "talk.mp4")
    assert added_keys(result) == [job]
    assert [r.run_key for r in result.run_requests] == [job]
    assert tick(instance, store, result.cursor).run_requests == []  # both names handled


def test_tick_validates_partition_added_in_the_same_tick(instance, store):
    """`evaluate_tick` is what the code server runs: it resolves each partitioned RunRequest
    against `subtitle_source_job` and checks the key exists after this tick's add requests."""
    video = drop(store, "lecture.mp4", b"lecture " * 100)
    job = job_key_for_file(video)

    with context(instance, store) as built:
        data = video_inbox_sensor.evaluate_tick(built)

    assert data.skip_message is None
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    assert request.partition_key == job and request.run_key == job
    assert request.tags["dagster/partition"] == job
    assert request.tags["dagster/sensor_name"] == "video_inbox_sensor"
    assert [k for r in data.dynamic_partitions_requests for k in r.partition_keys] == [job]
    # nothing was added by evaluating: the daemon applies the requests afterwards
    assert instance.get_dynamic_partitions(PARTITIONS) == []

    with context(instance, store, data.cursor) as built:
        empty = video_inbox_sensor.evaluate_tick(built)
    assert empty.run_requests == []
    assert empty.skip_message


def test_run_request_for_an_unknown_partition_is_rejected(instance, store):
    """The same validation, shown to be real: a key that is neither stored nor added fails."""
    with pytest.raises(Exception, match="(?i)partition"):
        subtitle_job = defs.resolve_job_def("subtitle_source_job")
        dg.RunRequest(partition_key="nope-00000000").with_resolved_tags_and_config(
            target_definition=subtitle_job,
            dynamic_partitions_requests=[],
            dynamic_partitions_store=instance,
        )


# --- the sensor daemon, in-process ------------------------------------------------------------


@pytest.fixture
def daemon_instance(tmp_path):
    """A test instance with the project's own dagster.yaml (queued runs: nothing executes)."""
    config = yaml.safe_load((project_root() / "dagster.yaml").read_text())
    home = tmp_path / "dagster_home"
    home.mkdir()
    # storage lives under DAGSTER_HOME; the session's is not this test's
    config["storage"]["sqlite"]["base_dir"] = str(home)
    with dg.instance_for_test(overrides=config, temp_dir=str(home)) as inst:
        yield inst


def _sensor_ticks(instance, name="video_inbox_sensor"):
    state = next(s for s in instance.all_instigator_state() if s.name == name)
    return list(reversed(instance.get_ticks(state.instigator_origin_id, state.selector_id)))


def test_daemon_adds_partition_launches_once_and_dedups_by_run_key(daemon_instance, monkeypatch, tmp_path):
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.scheduler.instigation import TickStatus
    from dagster._core.test_utils import (
        InProcessTestWorkspaceLoadTarget,
        create_test_daemon_workspace_context,
        freeze_time,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.sensor import execute_sensor_iteration

    home = tmp_path / "stageflow"
    monkeypatch.setenv("STAGEFLOW_HOME", str(home))  # the code location's StageStore() reads it
    store = StageStore(home=str(home))
    instance = daemon_instance
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    data = b"daemon video " * 100
    video = drop(store, "talk.mp4", data)
    drop(store, "talk.mkv", data)  # same content, second name: same job
    job = job_key_for_file(video)

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="stageflow_assets.definitions", attribute="defs",
                             working_directory=str(project_root())),
        location_name="stageflow_assets",
    )
    logger = logging.getLogger("test_sensor_daemon")
    with create_test_daemon_workspace_context(InProcessTestWorkspaceLoadTarget(origin), instance) as ws:
        list(execute_sensor_iteration(ws, logger, None, None))
        ticks = _sensor_ticks(instance)
        assert [t.status for t in ticks] == [TickStatus.SUCCESS], ticks[-1].error
        assert instance.get_dynamic_partitions(PARTITIONS) == [job]
        runs = instance.get_runs()
        assert len(runs) == 1
        run = runs[0]
        assert run.job_name == "subtitle_source_job"
        assert run.status == dg.DagsterRunStatus.QUEUED
        assert run.tags["dagster/partition"] == job
        assert run.tags["dagster/run_key"] == job
        assert run.tags[JOB_TAG] == job

        # the file is dropped again (new mtime): the sensor asks again, the daemon skips it
        settled(video, age=30)
        with freeze_time(time.time() + 60):  # past the sensor's minimum interval
            list(execute_sensor_iteration(ws, logger, None, None))
        ticks = _sensor_ticks(instance)
        assert [t.status for t in ticks] == [TickStatus.SUCCESS, TickStatus.SKIPPED], ticks[-1].error
        assert ticks[-1].run_keys == [job]
        assert len(instance.get_runs()) == 1
        assert instance.get_dynamic_partitions(PARTITIONS) == [job]
