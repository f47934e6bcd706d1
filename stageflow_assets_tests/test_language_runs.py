"""A video's language runs go side by side, each an ordinary run of the instance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core import runs as runs_module
from stageflow_assets.core.runs import PID_TAG, PartitionRun, RunOutcome, execute_side_by_side
from stageflow_assets.core.settings import parallel_runs
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.subtitles.partitions import subtitle_job_partitions
from stageflow_assets_tests.conftest import run_cli

APERTIUM = "/usr/bin/apertium"


def _language_runs(job: str) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={JOB_TAG: job}))
        return sorted((r.dagster_run for r in records if r.dagster_run.job_name == "subtitle_language_job"),
                      key=lambda run: run.tags["dagster/partition/lang"])


def _span(run: dg.DagsterRun) -> tuple[float, float]:
    with dg.DagsterInstance.get() as instance:
        stamps = {r.event_log_entry.dagster_event_type: r.event_log_entry.timestamp
                  for r in instance.get_records_for_run(run.run_id).records
                  if r.event_log_entry.dagster_event_type in (dg.DagsterEventType.RUN_START,
                                                              dg.DagsterEventType.RUN_SUCCESS)}
    return stamps[dg.DagsterEventType.RUN_START], stamps[dg.DagsterEventType.RUN_SUCCESS]


@pytest.mark.slow
def test_language_runs_go_side_by_side_as_ordinary_runs(speech_video, tmp_path):
    video = tmp_path / "side-by-side.mp4"
    video.write_bytes(speech_video.read_bytes())
    result = run_cli("subtitles", video, "--lang", "es", "--lang", "ca", "--out", tmp_path / "out",
                     env={"STAGEFLOW_PARALLEL_RUNS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = result.value("job")
    es, ca = _language_runs(job)[1], _language_runs(job)[0]
    assert [r.status for r in (es, ca)] == [dg.DagsterRunStatus.SUCCESS] * 2
    # each in its own process, not the CLI's (whose pid the source run carries)
    pids = {run.tags[PID_TAG] for run in (es, ca)}
    with dg.DagsterInstance.get() as instance:
        source = [r.dagster_run for r in instance.get_run_records(filters=dg.RunsFilter(tags={JOB_TAG: job}))
                  if r.dagster_run.job_name == "subtitle_source_job"][0]
    assert len(pids) == 2 and source.tags[PID_TAG] not in pids
    # and at the same time: each started before the other ended
    (es_start, es_end), (ca_start, ca_end) = _span(es), _span(ca)
    assert es_start < ca_end and ca_start < es_end, (es_start, es_end, ca_start, ca_end)
    # the CLI lists them in the order asked, and the deliverables are all there
    assert [line.split(maxsplit=1)[1] for line in result.value("run")] == [
        "source, audio, transcript", "subtitles [es]", "subtitles [ca]", "subtitled video"]
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".ass"] * 2 + [".mkv"] + [".srt"] * 2 + [".vtt"] * 2


@pytest.mark.slow
def test_one_at_a_time_in_the_cli_process_when_asked(speech_video, tmp_path):
    video = tmp_path / "one-at-a-time.mp4"
    video.write_bytes(speech_video.read_bytes())
    result = run_cli("subtitles", video, "--lang", "es", "--lang", "ca", env={"STAGEFLOW_PARALLEL_RUNS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = result.value("job")
    es, ca = _language_runs(job)[1], _language_runs(job)[0]
    assert es.tags[PID_TAG] == ca.tags[PID_TAG]  # both in the CLI's own process
    (es_start, es_end), (ca_start, ca_end) = _span(es), _span(ca)
    assert es_end <= ca_start


@pytest.mark.slow
def test_a_failed_language_fails_the_command_and_the_others_finish(speech_video, tmp_path):
    """Apertium breaks for Catalan only: Spanish is still delivered, the command names Catalan."""
    if not Path(APERTIUM).is_file():
        pytest.skip(f"{APERTIUM} is not installed (make install installs it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apertium"
    # the real script's first lines tell stageflow where the installed pairs are
    fake.write_text(
        '#!/bin/sh\nAPERTIUM_DATADIR="${APERTIUM_DATADIR:-/usr/share/apertium}"\n'
        'if [ "$1" = eng-cat ]; then echo "eng-cat: dictionary is broken" >&2; exit 3; fi\n'
        f'exec {APERTIUM} "$@"\n'
    )
    fake.chmod(0o755)
    video = tmp_path / "one-fails.mp4"
    video.write_bytes(speech_video.read_bytes())
    result = run_cli("subtitles", video, "--lang", "ca", "--lang", "es", "--out", tmp_path / "out",
                     env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "STAGEFLOW_PARALLEL_RUNS": "2"})

    assert result.returncode == 1
    job = result.stderr.split("job ", 1)[1].split(":", 1)[0]  # the first progress line names it
    ca, es = _language_runs(job)
    assert (ca.status, es.status) == (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS)
    assert result.error_lines == [
        "stageflow: error: subtitles [ca]: apertium failed (exit 3): eng-cat: dictionary is broken "
        f"(run {ca.run_id}; inspect it in the UI: make ui)"
    ], result.stderr
    home = Path(os.environ["STAGEFLOW_HOME"]) / "subtitles" / job
    assert json.loads((home / "05_translation" / "ca" / "manifest.failed.json").read_text())["status"] == "failed"
    assert not (home / "05_translation" / "ca" / "manifest.json").exists()
    assert json.loads((home / "06_subtitles" / "es" / "manifest.json").read_text())["status"] == "success"
    # no mux after a failed language, and no deliverables half-copied
    assert not (home / "07_subtitled_video").exists()
    assert not (tmp_path / "out").exists()


# -- the forked runs themselves ------------------------------------------------------------------

def _planned(n: int) -> list[PartitionRun]:
    return [PartitionRun(f"run {i}", "subtitle_source_job", subtitle_job_partitions, f"job-{i}") for i in range(n)]


def test_outcomes_come_back_in_order_from_other_processes(instance, monkeypatch):
    def fake_execute(instance, job_name, partitions_def, key, tags, run_config=None):
        return RunOutcome(f"id-{key}", True, f"{os.getpid()} {tags['t']}")

    monkeypatch.setattr(runs_module, "execute_partition", fake_execute)
    outcomes = execute_side_by_side(instance, _planned(5), {"t": "tagged"}, workers=2)
    assert [o.run_id for o in outcomes] == [f"id-job-{i}" for i in range(5)]
    pids = {o.error.split()[0] for o in outcomes}
    assert str(os.getpid()) not in pids
    assert {o.error.split()[1] for o in outcomes} == {"tagged"}


def test_a_run_process_that_dies_is_a_failed_outcome(instance, monkeypatch):
    def dies(instance, job_name, partitions_def, key, tags, run_config=None):
        if key == "job-1":
            os._exit(9)
        return RunOutcome(f"id-{key}", True)

    monkeypatch.setattr(runs_module, "execute_partition", dies)
    first, second, third = execute_side_by_side(instance, _planned(3), {}, workers=2)
    assert first.success and third.success
    assert not second.success
    assert second.error == "the process running it ended without a result (exit status 9)"


def test_an_exception_in_a_run_process_is_its_failure(instance, monkeypatch):
    def raises(*args, **kwargs):
        raise RuntimeError("storage went away")

    monkeypatch.setattr(runs_module, "execute_partition", raises)
    (outcome,) = execute_side_by_side(instance, _planned(1), {}, workers=2)
    assert outcome == RunOutcome("", False, "RuntimeError: storage went away")


@pytest.mark.parametrize("raw, expected", [("1", 1), ("3", 3), ("", len(os.sched_getaffinity(0)))])
def test_parallel_runs_setting(raw, expected, monkeypatch):
    monkeypatch.setenv("STAGEFLOW_PARALLEL_RUNS", raw)
    assert parallel_runs() == expected


@pytest.mark.parametrize("raw", ["0", "two", "-1"])
def test_parallel_runs_setting_rejects_nonsense(raw, monkeypatch):
    monkeypatch.setenv("STAGEFLOW_PARALLEL_RUNS", raw)
    with pytest.raises(ValueError, match=f"STAGEFLOW_PARALLEL_RUNS='{raw}'"):
        parallel_runs()


def test_a_bad_parallel_runs_setting_is_one_clear_cli_error(speech_video):
    result = run_cli("subtitles", speech_video, "--lang", "es", env={"STAGEFLOW_PARALLEL_RUNS": "many"})
    assert result.returncode == 2
    assert result.error_lines == [
        "stageflow: error: STAGEFLOW_PARALLEL_RUNS='many': give a whole number of runs, e.g. 1 or 2"]
