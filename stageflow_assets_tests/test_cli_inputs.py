"""`stageflow subtitles` checks its inputs before any run: exit 2, one line, nothing registered.

A glossary is read by the language runs, after the transcription; a broken one used to fail
there (retried twice, "Exceeded max_retries of 2", naming no file).
"""

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.keys import job_key_for_file
from stageflow_assets.subtitles import stage_dirs
from stageflow_assets.subtitles.partitions import subtitle_job_partitions
from stageflow_assets_tests.conftest import run_cli

# a PNG's first bytes: what a wrongly picked file looks like
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


def home() -> Path:
    return Path(os.environ["STAGEFLOW_HOME"])


@pytest.fixture
def video(speech_video, tmp_path) -> Path:
    """A video of its own (its own job key), so no other test's job is touched."""
    copy = tmp_path / "inputs-checked.mp4"
    shutil.copyfile(speech_video, copy)
    with copy.open("ab") as fh:  # same media, other bytes: a job key no other test has
        fh.write(b"\0" * 16)
    return copy


def rejected_before_any_run(video: Path, *args: object) -> str:
    """Run the CLI; it must exit 2 with one line and leave no run, partition or stage behind."""
    with dg.DagsterInstance.get() as instance:
        runs_before = instance.get_runs_count()
    result = run_cli("subtitles", video, "--lang", "es", *args)
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(result.error_lines) == 1, result.stderr
    assert result.stdout == ""
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs_count() == runs_before
        jobs = instance.get_dynamic_partitions(subtitle_job_partitions.name)
    if video.is_file():
        assert job_key_for_file(video) not in jobs
        assert not (home() / stage_dirs.DOMAIN / job_key_for_file(video)).exists()  # nothing transcribed
    return result.error_lines[0]


def test_a_binary_glossary_stops_the_command_before_any_run(video, tmp_path):
    terms = tmp_path / "terms.csv"
    rows = b"source,target_language,target\nhouse,es,casa\n"
    terms.write_bytes(rows + PNG)

    line = rejected_before_any_run(video, "--glossary", terms)

    assert line == (f"stageflow: error: {terms} line 3: binary data (byte {len(rows)}), not UTF-8 text; save the "
                    "glossary as a UTF-8 CSV of `source term,target language,target term` rows")


@pytest.mark.parametrize("rows,says", [
    ("source,target_language,target\nhouse,es,casa\n\nthe dog,es\n",
     "line 4: expected `source term,target language,target term`, found 2 of 3 cells; fix or remove that row"),
    ("house,es,casa\ncat,Spanish,gato\n",
     "line 2: 'Spanish' is not a language code; write the target language as its ISO 639-1 code (e.g. es)"),
], ids=["missing-cell", "language-name"])
def test_a_malformed_glossary_row_is_named_by_its_line(video, tmp_path, rows, says):
    terms = tmp_path / "terms.csv"
    terms.write_text(rows, encoding="utf-8")

    line = rejected_before_any_run(video, "--glossary", terms)

    assert line == f"stageflow: error: {terms} {says}"


def test_a_broken_global_glossary_is_checked_too(video):
    global_terms = home() / "glossary.csv"
    assert not global_terms.exists()
    home().mkdir(parents=True, exist_ok=True)
    global_terms.write_bytes(PNG)
    try:
        line = rejected_before_any_run(video)
    finally:
        global_terms.unlink()

    assert line.startswith(f"stageflow: error: {global_terms} line 1: binary data (byte 0), not UTF-8 text")


def test_a_folder_given_as_the_video(tmp_path):
    folder = tmp_path / "clips.mp4"
    folder.mkdir()

    line = rejected_before_any_run(folder)

    assert line == f"stageflow: error: {folder}: is a directory; give the video file itself"
