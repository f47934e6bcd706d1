"""A run killed mid-step keeps the last good materialization; re-execution from failure finishes it.

The forced re-run of a job is SIGKILLed while Whisper transcribes. The transcript's
`manifest.json` and outputs from the earlier run must be untouched, no child process of the
killed run may linger, and `stageflow reexecute` must complete the run from its failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.hashing import sha256_file
from stageflow_assets.core.manifest import MANIFEST_NAME
from stageflow_assets.core.paths import TEMP_MARK
from stageflow_assets.core.runs import PID_TAG
from stageflow_assets.core.stage import FORCE_TAG, STAGE_LOG_NAME
from stageflow_assets.subtitles import stage_dirs
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets_tests.conftest import STAGEFLOW, run_cli

PARENT_RUN_TAG = "dagster/parent_run_id"
ASR_HEAD_START_S = 1.0  # after the transcript stage starts: Whisper is loading or decoding


def started_runs(log: Path, job: str) -> list[str]:
    """Run ids of the `transcript [job] started` lines, in order."""
    if not log.exists():
        return []
    pattern = re.compile(rf"run (\S+): transcript \[{re.escape(job)}\] started")
    return pattern.findall(log.read_text(encoding="utf-8"))


def _children() -> dict[int, list[int]]:
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        by_parent.setdefault(ppid, []).append(int(entry.name))
    return by_parent


def descendants(pid: int) -> dict[int, str]:
    """{pid: command line} of every live process below `pid`."""
    by_parent, found, todo = _children(), {}, [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found[child] = _cmdline(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie waits for whoever reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_mentioning(*needles: str) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            cmd = _cmdline(int(entry.name))
            if any(n in cmd for n in needles) and alive(int(entry.name)):
                found[int(entry.name)] = cmd
    return found


def job_runs(instance: dg.DagsterInstance, job: str) -> dict[str, dg.DagsterRun]:
    records = instance.get_run_records(filters=dg.RunsFilter(tags={JOB_TAG: job}))
    return {r.dagster_run.run_id: r.dagster_run for r in records}


def outputs_intact(stage_dir: Path, manifest: dict) -> None:
    home = Path(os.environ["STAGEFLOW_HOME"])
    assert manifest["outputs"], manifest
    for record in manifest["outputs"]:
        path = home / record["path"]
        assert path.parent == stage_dir
        assert path.stat().st_size == record["bytes"]
        assert sha256_file(path) == record["sha256"], path


@pytest.mark.slow
def test_killed_step_keeps_last_good_materialization_and_reexecutes(librivox_video, tmp_path):
    video = tmp_path / "kill-resume.mp4"
    shutil.copyfile(librivox_video[0], video)

    first = run_cli("subtitles", video, "--lang", "en")
    assert first.returncode == 0, first.stderr[-3000:]
    job = first.value("job")[0]
    home = Path(os.environ["STAGEFLOW_HOME"])
    transcript_dir = home / stage_dirs.DOMAIN / job / stage_dirs.TRANSCRIPT.dir_name
    manifest_path = transcript_dir / MANIFEST_NAME
    log = transcript_dir / STAGE_LOG_NAME
    good_bytes = manifest_path.read_bytes()
    good = json.loads(good_bytes)
    assert good["status"] == "success"
    outputs_intact(transcript_dir, good)
    starts_before = started_runs(log, job)
    with dg.DagsterInstance.get() as instance:
        runs_before = set(job_runs(instance, job))

    # the forced re-run, killed while the transcript stage runs Whisper
    stdout, stderr = (open(tmp_path / name, "w") for name in ("killed.out", "killed.err"))
    proc = subprocess.Popen(
        [str(STAGEFLOW), "subtitles", str(video), "--lang", "en", "--force"],
        stdout=stdout, stderr=stderr, start_new_session=True,
    )
    seen: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 300
        while len(started_runs(log, job)) <= len(starts_before):
            seen.update(descendants(proc.pid))
            assert proc.poll() is None, (tmp_path / "killed.err").read_text()[-3000:]
            assert time.monotonic() < deadline, "the transcript stage never started"
            time.sleep(0.05)
        killed_run = started_runs(log, job)[-1]
        assert killed_run not in starts_before
        time.sleep(ASR_HEAD_START_S)
        assert proc.poll() is None, "the run ended before it could be killed"
        at_kill = descendants(proc.pid)
        seen.update(at_kill)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stdout.close()
        stderr.close()

    # the kill landed inside the transcript stage: it neither finished nor recorded a failure
    tail = log.read_text(encoding="utf-8").split(f"run {killed_run}: transcript", 1)[1]
    assert "success in" not in tail and "failed:" not in tail, tail

    # the last good materialization is untouched
    assert manifest_path.read_bytes() == good_bytes
    outputs_intact(transcript_dir, good)

    # no child of the killed run is left (Dagster's log tails notice within a second or two)
    deadline = time.monotonic() + 20
    while (left := {p: c for p, c in seen.items() if alive(p) and _cmdline(p) == c}) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == {}, f"processes of the killed run are still alive: {left}"
    assert processes_mentioning(str(video), str(home / stage_dirs.DOMAIN / job)) == {}
    assert not [c for c in at_kill.values() if "ffmpeg" in c or "whisper" in c], at_kill

    # the killed run is recorded, and not as a success
    with dg.DagsterInstance.get() as instance:
        new_runs = {k: r for k, r in job_runs(instance, job).items() if k not in runs_before}
        assert list(new_runs) == [killed_run], new_runs
        run = new_runs[killed_run]
        assert run.status != dg.DagsterRunStatus.SUCCESS, run.status
        assert run.tags.get(FORCE_TAG) == "true"
        assert run.tags.get(PID_TAG) == str(proc.pid)

    # re-execute it from failure
    resumed = run_cli("reexecute", killed_run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.error_lines == []
    (line,) = resumed.value("run")
    new_run_id = line.split()[0]
    assert line.endswith(f"re-executed from {killed_run}"), line

    after = json.loads(manifest_path.read_text())
    assert after["status"] == "success"
    assert after["run_id"] == new_run_id != good["run_id"]
    assert after["partition"] == job
    outputs_intact(transcript_dir, after)
    assert new_run_id in started_runs(log, job)
    assert not list((home / stage_dirs.DOMAIN / job).rglob(f"*{TEMP_MARK}*"))

    with dg.DagsterInstance.get() as instance:
        killed = instance.get_run_by_id(killed_run)
        assert killed.status == dg.DagsterRunStatus.FAILURE
        rerun = instance.get_run_by_id(new_run_id)
        assert rerun.status == dg.DagsterRunStatus.SUCCESS
        assert rerun.parent_run_id == killed_run
        assert rerun.tags.get(PARENT_RUN_TAG) == killed_run
        assert rerun.tags.get(JOB_TAG) == job  # found by the same filter as the run it resumes
        assert new_run_id in job_runs(instance, job)
