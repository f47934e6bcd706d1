"""The outbox through the CLI: deliveries, the notice of a failed job, and `stageflow forget`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id

from stageflow_assets.core.hashing import sha256_file
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets_tests.conftest import APERTIUM, fake_apertium, run_cli

pytestmark = pytest.mark.slow
SUBTITLE_FILES = ("ass", "srt", "vtt")


def home() -> Path:
    return Path(os.environ["STAGEFLOW_HOME"])


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_subtitles_are_delivered_to_the_job_outbox_folder(speech_video, tmp_path):
    video = tmp_path / "delivered.mp4"
    shutil.copyfile(speech_video, video)
    result = run_cli("subtitles", video, "--lang", "es", "--lang", "en", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = result.value("job")
    folder = home() / "outbox" / "subtitles" / job
    assert result.value("outbox") == [str(folder)]
    delivered = [f"{job}.{lang}.{ext}" for lang in ("en", "es") for ext in SUBTITLE_FILES] + [f"{job}.mkv"]
    assert listing(folder) == sorted(delivered + ["manifest.json", "stage.log"])
    # the same bytes as the stage dirs' (and --out's) files, each recorded with its checksum
    for name in delivered:
        assert (folder / name).read_bytes() == (tmp_path / "out" / name).read_bytes(), name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stage"] == "subtitle_outbox" and manifest["status"] == "success"
    assert {Path(o["path"]).name: o["sha256"] for o in manifest["outputs"]} == {
        name: sha256_file(folder / name) for name in delivered}
    assert listing(folder.parent).count(job) == 1 and not [n for n in listing(folder.parent) if n.startswith(".")]

    # asked again for English only: the folder is replaced as a whole, Spanish goes with the old one
    again = run_cli("subtitles", video, "--lang", "en")
    assert again.returncode == 0, again.stderr[-3000:]
    assert listing(folder) == sorted([f"{job}.en.{ext}" for ext in SUBTITLE_FILES] + [f"{job}.mkv", "manifest.json",
                                                                                       "stage.log"])


@pytest.mark.skipif(not APERTIUM.is_file(), reason="Apertium is not installed (make install installs it)")
def test_a_failed_job_leaves_failed_txt_until_it_succeeds(speech_video, tmp_path):
    bin_dir = fake_apertium(tmp_path, 'if [ "$1" = eng-spa ]; then echo "eng-spa: dictionary is broken" >&2; exit 3; fi\n'
                                      f'exec {APERTIUM} "$@"\n')
    video = tmp_path / "fails-first.mp4"
    shutil.copyfile(speech_video, video)
    failed = run_cli("subtitles", video, "--lang", "es", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert failed.returncode == 1
    job = failed.stderr.split("job ", 1)[1].split(":", 1)[0]
    folder = home() / "outbox" / "subtitles" / job
    assert listing(folder) == ["FAILED.txt"]  # nothing delivered, and the reason
    run_id = failed.error_lines[0].split("(run ", 1)[1].split(";", 1)[0]
    assert (folder / "FAILED.txt").read_text() == \
        f"translation [es]: apertium failed (exit 3): eng-spa: dictionary is broken (run {run_id})\n"

    fixed = run_cli("subtitles", video, "--lang", "es")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert listing(folder) == sorted([f"{job}.es.{ext}" for ext in SUBTITLE_FILES] + [f"{job}.mkv", "manifest.json",
                                                                                       "stage.log"])


def test_a_deck_is_delivered_and_a_failed_build_leaves_a_notice(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("cat\ndog\nhouse\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "espeak-ng").write_text('#!/bin/sh\necho "espeak-ng: voice data is broken" >&2\nexit 1\n')
    (bin_dir / "espeak-ng").chmod(0o755)
    failed = run_cli("vocab", words, "--deck", "Outbox::Deck", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert failed.returncode == 1
    job = failed.stderr.split("(", 1)[1].split(")", 1)[0]  # the progress line: deck 'NAME' (KEY): ...
    folder = home() / "outbox" / "vocabulary" / job
    notice = (folder / "FAILED.txt").read_text()
    assert notice.startswith("word_analysis: espeak-ng failed (exit 1): espeak-ng: voice data is broken (run ")
    assert notice.count("\n") == 1 and listing(folder) == ["FAILED.txt"]

    built = run_cli("vocab", words, "--deck", "Outbox::Deck", "--out", tmp_path / "out")
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.value("job") == [job] and built.value("outbox") == [str(folder)]
    assert listing(folder) == ["manifest.json", "outbox-deck.apkg", "stage.log"]
    assert (folder / "outbox-deck.apkg").read_bytes() == (tmp_path / "out" / "outbox-deck.apkg").read_bytes()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_forget_removes_the_job_and_nothing_else(speech_video, tmp_path):
    video = tmp_path / "forget-me.mp4"
    shutil.copyfile(speech_video, video)
    made = run_cli("subtitles", video, "--lang", "es")
    assert made.returncode == 0, made.stderr[-3000:]
    (job,) = made.value("job")
    runs = [line.split()[0] for line in made.value("run")]
    before = _tree(home())

    result = run_cli("forget", job)
    assert result.returncode == 0, result.stderr
    jobs_dir, outbox = home() / "subtitles" / job, home() / "outbox" / "subtitles" / job
    assert result.stdout.splitlines() == [
        f"forgot: partition subtitle_jobs/{job} (video)",
        f"forgot: {jobs_dir} (stage dirs)",
        f"forgot: {outbox} (outbox)",
        f"kept: {len(runs)} run(s) in the instance's history (--runs deletes them)",
    ]
    gone = {p for p in before if p.startswith((f"subtitles/{job}", f"outbox/subtitles/{job}"))}
    assert _tree(home()) == before - gone  # nothing else touched (the inbox, other jobs, caches)
    with dg.DagsterInstance.get() as instance:
        assert not instance.has_dynamic_partition("subtitle_jobs", job)
        assert all(instance.get_run_by_id(run_id) is not None for run_id in runs)

    again = run_cli("forget", job)
    assert again.returncode == 2
    assert again.error_lines == [f"stageflow: error: {job}: no video, deck or journey has this key (the `job:` "
                                 "or `journey:` line of the command that made it names it)"]


def test_forget_a_journey_with_its_runs(tmp_path):
    made = run_cli("journey", "a castle by the sea", "--lang", "en", "--interception", "stille-post",
                   "--iterations", "2", "--out", tmp_path / "out")
    assert made.returncode == 0, made.stderr[-3000:]
    (key,) = made.value("journey")
    (run_id,) = [line.split()[0] for line in made.value("run")]

    result = run_cli("forget", key, "--runs")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"forgot: partition journey/{key} (journey)",
        f"forgot: {home() / 'journey' / key} (stage dirs)",
        "forgot: 1 run(s) and their event logs",
    ]
    assert not (home() / "journey" / key).exists()
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run_id) is None
        assert not instance.has_dynamic_partition("journey", key)


def test_forget_refuses_while_a_run_of_the_job_is_going(tmp_path):
    words = tmp_path / "busy.txt"
    words.write_text("tree\n")
    made = run_cli("vocab", words, "--deck", "Forget::Busy")
    assert made.returncode == 0, made.stderr[-3000:]
    (job,) = made.value("job")
    with dg.DagsterInstance.get() as instance:
        going = instance.add_run(dg.DagsterRun(job_name="vocabulary_deck_job", run_id=make_new_run_id(),
                                               tags={JOB_TAG: job}, status=dg.DagsterRunStatus.STARTED))
    try:
        result = run_cli("forget", job)
        assert result.returncode == 3
        assert result.error_lines == [f"stageflow: error: {job}: run {going.run_id} (vocabulary_deck_job) is "
                                      "STARTED; wait for it to end or terminate it (make ui), then forget the key"]
        assert (home() / "vocabulary" / job).is_dir() and (home() / "outbox" / "vocabulary" / job).is_dir()
    finally:
        with dg.DagsterInstance.get() as instance:
            instance.delete_run(going.run_id)
    assert run_cli("forget", job).returncode == 0
    assert not (home() / "vocabulary" / job).exists() and not (home() / "outbox" / "vocabulary" / job).exists()


def test_forget_names_a_key_that_is_not_one():
    result = run_cli("forget", "../etc")
    assert result.returncode == 2
    assert result.error_lines == ["stageflow: error: '../etc' is not a stageflow key (lower-case letters, digits, "
                                  "'.', '_', '-'): give the key from a `job:` or `journey:` line"]
