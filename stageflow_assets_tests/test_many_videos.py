"""`stageflow subtitles A B C`: several videos in one command, one after the other in its process."""

from __future__ import annotations

import shutil
import subprocess

import dagster as dg

from stageflow_assets.core.runs import PID_TAG
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets_tests.conftest import instance_with_env, run_cli


def _silent_video(path):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=blue:s=160x120:r=25",
                    "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path


def test_every_video_is_done_and_a_failed_one_does_not_stop_the_others(speech_video, tmp_path):
    env = {"STAGEFLOW_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    shutil.copyfile(speech_video, first)
    shutil.copyfile(speech_video, second)
    silent = _silent_video(tmp_path / "silent.mp4")

    result = run_cli("subtitles", first, silent, second, "--lang", "es", "--out", tmp_path / "out", env=env)

    assert result.returncode == 1, result.stderr[-3000:]
    (error,) = result.error_lines
    assert error.startswith(f"stageflow: error: {silent}: ") and "no audio stream" in error, error
    assert error.endswith("; inspect it in the UI: make ui)")
    jobs = result.value("job")  # the two that worked, in the order given
    assert [job.split("-")[0] for job in jobs] == ["first", "second"]
    for job in jobs:
        assert (tmp_path / "out" / f"{job}.es.srt").read_text().strip()
        assert (tmp_path / "out" / f"{job}.mkv").stat().st_size > 0
    assert len(result.value("outbox")) == 2
    failed = list((tmp_path / "home" / "outbox" / "subtitles").glob("silent-*/FAILED.txt"))
    assert len(failed) == 1 and "no audio stream" in failed[0].read_text()

    with instance_with_env(env) as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
    statuses = {r.tags[JOB_TAG]: set() for r in runs}
    for run in runs:
        statuses[run.tags[JOB_TAG]].add(run.status)
    assert all(statuses[job] == {dg.DagsterRunStatus.SUCCESS} for job in jobs)
    assert len(runs) == 3 + 3 + 1  # source, language, mux for each good video; the silent one's source
    assert len({run.tags[PID_TAG] for run in runs}) == 1  # one process, one start-up, for all of them


def test_a_missing_video_is_caught_before_any_run(speech_video, tmp_path):
    env = {"STAGEFLOW_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    result = run_cli("subtitles", speech_video, tmp_path / "nope.mp4", "--lang", "es", env=env)
    assert result.returncode == 2
    assert result.error_lines == [f"stageflow: error: {tmp_path / 'nope.mp4'}: no such file"]
    assert not result.value("job")
    assert not (tmp_path / "dagster" / "history").exists()  # no run was made
