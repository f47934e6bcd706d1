"""A video's language runs: ordinary runs of the instance, each language on its own."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.runs import PID_TAG, SESSION_TAG
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets_tests.conftest import APERTIUM, fake_apertium, run_cli



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
def test_language_runs_are_ordinary_runs_of_the_cli_process(speech_video, tmp_path):
    video = tmp_path / "languages.mp4"
    video.write_bytes(speech_video.read_bytes())
    result = run_cli("subtitles", video, "--lang", "es", "--lang", "ca", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = result.value("job")
    ca, es = _language_runs(job)
    assert [r.status for r in (es, ca)] == [dg.DagsterRunStatus.SUCCESS] * 2
    # executed by the CLI itself, one after the other, tagged with its process and session
    assert es.tags[PID_TAG] == ca.tags[PID_TAG] and es.tags[SESSION_TAG] == ca.tags[SESSION_TAG]
    assert es.tags[SOURCE_TAG] == "cli"
    (es_start, es_end), (ca_start, ca_end) = _span(es), _span(ca)
    assert es_end <= ca_start
    # the CLI lists them in the order asked, and the deliverables are all there
    assert [line.split(maxsplit=1)[1] for line in result.value("run")] == [
        "source, audio, transcript", "subtitles [es]", "subtitles [ca]", "subtitled video"]
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".ass"] * 2 + [".mkv"] + [".srt"] * 2 + [".vtt"] * 2


@pytest.mark.slow
def test_a_failed_language_fails_the_command_and_the_others_finish(speech_video, tmp_path):
    """Apertium breaks for Catalan only: Spanish is still delivered, the command names Catalan."""
    bin_dir = fake_apertium(tmp_path, 'if [ "$1" = eng-cat ]; then echo "eng-cat: dictionary is broken" >&2; exit 3; fi\n'
                                      f'exec {APERTIUM} "$@"\n')
    video = tmp_path / "one-fails.mp4"
    video.write_bytes(speech_video.read_bytes())
    result = run_cli("subtitles", video, "--lang", "ca", "--lang", "es", "--out", tmp_path / "out",
                     env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})

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
