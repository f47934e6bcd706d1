"""Stopping work: Ctrl-C on the CLI, a run's max runtime (the UI's Terminate: test_ui.py).

A real SIGINT goes to the CLI's whole process group, as a terminal sends it; the CLI runs in a
session of its own with SIGINT not ignored (as in a terminal, unlike a background job).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.runs import MAX_RUNTIME_TAG
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets_tests.conftest import STAGEFLOW, fake_apertium
from stageflow_assets_tests.test_kill_resume import alive, descendants

pytestmark = pytest.mark.slow


def start_cli(args: list, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(STAGEFLOW), *map(str, args)], start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the CLI ended before {what}: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no {what} within {timeout:g} s")


def job_dir(job_prefix: str) -> Path | None:
    found = sorted((Path(os.environ["STAGEFLOW_HOME"]) / "subtitles").glob(f"{job_prefix}-*"))
    return found[0] if found else None


def stage_started(job_prefix: str, stage_dir: str) -> bool:
    job = job_dir(job_prefix)
    log = job / stage_dir / "stage.log" if job else None
    return bool(log and log.is_file() and " started" in log.read_text())


def job_runs(job: str) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.get() as instance:
        return [r.dagster_run for r in instance.get_run_records(filters=dg.RunsFilter(tags={JOB_TAG: job}))]


def test_ctrl_c_during_transcription_cancels_the_run_at_once(long_speech_video, tmp_path):
    video = tmp_path / "ctrlc.mp4"
    video.write_bytes(long_speech_video.read_bytes())
    out = tmp_path / "out"
    proc = start_cli(["subtitles", video, "--lang", "es", "--out", out])
    wait_for(lambda: stage_started("ctrlc", "03_transcript"), 180, "transcription", proc)
    time.sleep(1.5)  # Whisper is loading or decoding
    tools = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    stdout, stderr = proc.communicate(timeout=120)
    took = time.monotonic() - sent

    assert proc.returncode == 130, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("stageflow:")]
    assert len(lines) == 1 and lines[0].startswith("stageflow: interrupted: source, audio, transcript stopped: "
                                                   "Ctrl-C or SIGTERM; nothing was delivered (run "), stderr
    assert "Traceback" not in stderr
    assert stdout == "" and not out.exists()  # no deliverable
    home = job_dir("ctrlc")
    (run,) = job_runs(home.name)
    assert run.status == dg.DagsterRunStatus.CANCELED
    assert run.run_id in lines[0]
    # stopped in the middle of the step: the transcript was never written, nothing half-written
    transcript_dir = home / "03_transcript"
    assert not (transcript_dir / "manifest.json").exists()
    assert sorted(p.name for p in transcript_dir.iterdir()) == ["manifest.failed.json", "stage.log"]
    assert not any(alive(pid) for pid in tools), tools
    assert took < 60, took  # the whole transcription of 6.5 min takes far longer than a window's decoding


def test_ctrl_c_on_a_command_of_several_videos_stops_them_all(speech_video, long_speech_video, tmp_path):
    """The first video delivered, the second transcribing, a third waiting: one Ctrl-C stops the
    command with one line; the second's run ends CANCELED and the third never starts."""
    first, second, third = tmp_path / "manyfirst.mp4", tmp_path / "manysecond.mp4", tmp_path / "manythird.mp4"
    first.write_bytes(speech_video.read_bytes())
    second.write_bytes(long_speech_video.read_bytes())
    third.write_bytes(speech_video.read_bytes())
    proc = start_cli(["subtitles", first, second, third, "--lang", "es", "--out", tmp_path / "out"])
    wait_for(lambda: stage_started("manysecond", "03_transcript"), 240, "the second video's transcription", proc)
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 130, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("stageflow:")]
    assert len(lines) == 1 and lines[0].startswith("stageflow: interrupted: source, audio, transcript stopped: "
                                                   "Ctrl-C or SIGTERM; nothing was delivered (run "), stderr
    assert "Traceback" not in stderr
    # the first video was delivered before the interrupt, and said so
    (job,) = [line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("job: ")]
    assert job.startswith("manyfirst-") and (tmp_path / "out" / f"{job}.es.srt").is_file()
    (run,) = job_runs(job_dir("manysecond").name)
    assert run.status == dg.DagsterRunStatus.CANCELED
    assert job_dir("manythird") is None or not job_runs(job_dir("manythird").name)


def test_ctrl_c_while_a_tool_runs_kills_the_tool(speech_video, tmp_path):
    pid_file = tmp_path / "apertium.pid"
    bin_dir = fake_apertium(tmp_path, f"echo $$ > {pid_file}\nexec sleep 300\n")  # it hangs
    video = tmp_path / "toolstop.mp4"
    video.write_bytes(speech_video.read_bytes())
    proc = start_cli(["subtitles", video, "--lang", "es", "--out", tmp_path / "out"],
                  env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    wait_for(pid_file.exists, 180, "apertium", proc)
    time.sleep(0.3)
    tool = int(pid_file.read_text())
    assert alive(tool)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr[-2000:]
    assert [l for l in stderr.splitlines() if l.startswith("stageflow:")][0].startswith(
        "stageflow: interrupted: subtitles [es] stopped: Ctrl-C or SIGTERM")
    deadline = time.monotonic() + 10
    while alive(tool) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(tool)
    runs = {r.job_name: r.status for r in job_runs(job_dir("toolstop").name)}
    assert runs == {"subtitle_source_job": dg.DagsterRunStatus.SUCCESS,
                    "subtitle_language_job": dg.DagsterRunStatus.CANCELED}
    assert not (tmp_path / "out").exists()


def test_max_runtime_tags_the_runs_and_the_cli_cancels_a_run_past_it(long_speech_video, tmp_path):
    video = tmp_path / "bounded.mp4"
    video.write_bytes(long_speech_video.read_bytes())
    proc = start_cli(["subtitles", video, "--lang", "es", "--max-runtime", "4"])
    _, stderr = proc.communicate(timeout=300)

    assert proc.returncode == 130, stderr[-2000:]
    line = [l for l in stderr.splitlines() if l.startswith("stageflow:")]
    assert len(line) == 1 and "stopped: it ran past its max runtime of 4 s (dagster/max_runtime)" in line[0], stderr
    (run,) = job_runs(job_dir("bounded").name)
    assert run.tags[MAX_RUNTIME_TAG] == "4"
    assert run.status == dg.DagsterRunStatus.CANCELED


def test_max_runtime_must_be_positive():
    result = subprocess.run([str(STAGEFLOW), "subtitles", "x.mp4", "--lang", "es", "--max-runtime", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--max-runtime" in result.stderr


def test_an_interrupt_logged_by_a_library_is_not_a_second_line(capsys):
    """SQLAlchemy's pool logs "Exception closing connection" with the KeyboardInterrupt that landed
    inside a close; the interrupt has its own line, so the CLI's warning handler leaves it out,
    while any other logged warning still gets its one line."""
    import logging
    import sys

    from stageflow_assets.cli import _OneLineWarnings

    handler = _OneLineWarnings()
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = logging.LogRecord("sqlalchemy.pool.impl.NullPool", logging.ERROR, __file__, 1,
                                        "Exception closing connection %r", ("conn",), sys.exc_info())
    handler.emit(interrupted)
    handler.emit(logging.LogRecord("dagster_postgres", logging.WARNING, __file__, 1,
                                   "Retrying failed database connection\nline two", (), None))
    assert capsys.readouterr().err.splitlines() == [
        "stageflow: warning: Retrying failed database connection"]


def test_a_run_failed_by_a_ctrl_c_between_steps_is_an_interrupt_not_a_failure(monkeypatch):
    """Dagster raises its interrupt between two steps outside any step: the run ends FAILURE, not
    CANCELED. When the watcher heard the Ctrl-C, the command reports an interrupt (exit 130), not
    a failed run (exit 1)."""
    from stageflow_assets.core import run_sequence
    from stageflow_assets.core.runs import RunOutcome

    class HeardCtrlC:
        heard_signal = True
        stopped: dict = {}
        seen: dict = {}

        def __init__(self, instance):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(run_sequence, "RunWatcher", HeardCtrlC)
    monkeypatch.setattr(run_sequence, "execute_partition", lambda *args, **kwargs: RunOutcome(
        "run-1", success=False, error="dagster._core.errors.DagsterExecutionInterruptedError"))
    monkeypatch.setattr(run_sequence.scaleout, "enabled", lambda: False)
    with dg.instance_for_test() as instance:
        runs = run_sequence.RunSequence(instance, "job-1", False, lambda line: None, [])
        with pytest.raises(run_sequence.Interrupted) as stopped:
            runs.run("source", "subtitle_source_job", dg.StaticPartitionsDefinition(["job-1"]), "job-1")
    assert stopped.value.run_id == "run-1" and "Ctrl-C or SIGTERM" in str(stopped.value)
    assert runs.runs == [("source", "run-1")]
