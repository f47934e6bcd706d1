"""End to end on real speech through the `stageflow` command, as a user runs it."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import jiwer
import pysubs2
import pytest

from stageflow_assets_tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

NORMALISE = jiwer.Compose([
    jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
    jiwer.ReduceToListOfListOfWords(),
])


def _stage(job: str, stage: str, lang: str | None = None) -> Path:
    path = Path(os.environ["STAGEFLOW_HOME"]) / "subtitles" / job / stage
    return path / lang if lang else path


def _manifest(job: str, stage: str, lang: str | None = None) -> dict:
    return json.loads((_stage(job, stage, lang) / "manifest.json").read_text())


def _subtitle_streams(video: Path) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "s", "-show_entries",
         "stream=codec_name:stream_tags=language", "-of", "json", str(video)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)["streams"]


@pytest.fixture(scope="module")
def first_run(librivox_video, tmp_path_factory):
    video, reference = librivox_video
    out = tmp_path_factory.mktemp("out")
    result = run_cli("subtitles", video, "--lang", "es", "--lang", "ca", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, out, reference


def test_transcript_matches_reference(first_run):
    result, _, reference = first_run
    job = result.value("job")[0]
    transcript = json.loads((_stage(job, "03_transcript") / "transcript.json").read_text())
    hypothesis = " ".join(s["text"] for s in transcript["segments"])
    wer = jiwer.wer(reference, hypothesis, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)
    assert transcript["language"] == "en"
    assert wer <= 0.25, (wer, hypothesis)


def test_deliverables_parse_and_mkv_tracks_are_tagged(first_run):
    result, out, _ = first_run
    job = result.value("job")[0]
    assert len(result.value("run")) == 4  # job chain, es, ca, mux
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{job}.{lang}.{ext}" for lang in ("ca", "es") for ext in ("srt", "vtt", "ass")] + [f"{job}.mkv"]
    )
    for lang in ("es", "ca"):
        srt = pysubs2.load(str(out / f"{job}.{lang}.srt"))
        vtt = pysubs2.load(str(out / f"{job}.{lang}.vtt"))
        assert len(srt) == len(vtt) > 0
        assert all(e.end > e.start for e in srt)
        assert [e.start for e in srt] == sorted(e.start for e in srt)
    translation_es = _manifest(job, "05_translation", "es")
    subtitles_es = _manifest(job, "06_subtitles", "es")["details"]
    # every translated cue is in the subtitles, a long one split in two (issue 11)
    assert translation_es["details"]["cues"] == subtitles_es["source_cues"]
    assert subtitles_es["cues"] == len(pysubs2.load(str(out / f"{job}.es.srt"))) >= subtitles_es["source_cues"]
    # the QC checks ran in each language run, each naming every rule's count
    instance = dg.DagsterInstance.get()
    for line in result.value("run"):
        run_id, what = line.split(maxsplit=1)
        if not what.startswith("subtitles ["):
            continue
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        by_name = {r.event_log_entry.dagster_event.event_specific_data.check_name:
                   r.event_log_entry.dagster_event.event_specific_data for r in records}
        assert {"qc_errors", "qc_warnings", "cue_count_matches_source"} <= set(by_name), what
        assert by_name["qc_errors"].passed and by_name["cue_count_matches_source"].passed
        assert {"line_length", "line_count", "duration"} <= set(by_name["qc_errors"].metadata["violations"].value)
        assert {"reading_speed", "frame_gap"} <= set(by_name["qc_warnings"].metadata["violations"].value)
    streams = _subtitle_streams(out / f"{job}.mkv")
    assert [(s["codec_name"], s["tags"]["language"]) for s in streams] == [("subrip", "spa"), ("subrip", "cat")]


def test_every_language_meets_the_hard_rules(first_run):
    """Issue 11 on a real clip: the Spanish of its third cue needs three lines in one cue (before,
    a three-line cue); split, every language keeps two lines, durations and gaps, and QC's
    blocking check finds no hard violation."""
    from stageflow_assets_tests.test_cue_fitting import assert_language_meets_hard_rules, hard_rule_report

    result, out, _ = first_run
    job = result.value("job")[0]
    for lang in ("es", "ca"):
        assert_language_meets_hard_rules(hard_rule_report(out, job, lang, result), lang)


def test_rerun_reuses_asr_and_new_language_runs_only_its_stages(first_run, tmp_path):
    result, _, _ = first_run
    job = result.value("job")[0]
    before = _manifest(job, "03_transcript")
    video = Path(json.loads((Path(os.environ["STAGEFLOW_HOME"]) / "subtitles" / job / "job.json").read_text())["source_path"])

    again = run_cli("subtitles", video, "--lang", "es", "--lang", "ca", "--lang", "en", "--out", tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.value("job") == [job]

    for stage in ("01_source_video", "02_audio", "03_transcript"):
        manifest = _manifest(job, stage)
        assert manifest["reused"] is True, stage
    transcript = _manifest(job, "03_transcript")
    assert transcript["reused_from_run"] == before["run_id"]
    assert transcript["outputs"] == before["outputs"]
    assert _manifest(job, "05_translation", "es")["reused"] is True
    assert _manifest(job, "05_translation", "en")["reused"] is False  # the new language ran
    assert _manifest(job, "06_subtitles", "en")["reused"] is False
    assert _manifest(job, "07_subtitled_video")["reused"] is False  # a new track
    assert len(_subtitle_streams(tmp_path / f"{job}.mkv")) == 3

    # the reuse is visible in the Dagster metadata of the latest materialization
    instance = dg.DagsterInstance.get()
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("transcript"), asset_partitions=[job]), limit=1
    ).records[0]
    metadata = record.asset_materialization.metadata
    assert metadata["reused"].value is True
    assert metadata["reused_from_run"].value == before["run_id"]
    assert record.run_id != before["run_id"]


def test_same_language_gives_captions_without_translation(speech_video, tmp_path):
    video = tmp_path / "captions.mp4"
    shutil.copyfile(speech_video, video)
    result = run_cli("subtitles", video, "--lang", "en", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    job = result.value("job")[0]
    translation = _manifest(job, "05_translation", "en")
    assert translation["config"]["backend"] == "none"  # captions: no translation step
    captions = pysubs2.load(str(tmp_path / "out" / f"{job}.en.srt"))
    text = " ".join(e.plaintext for e in captions).lower()
    assert "fox" in text and "house" in text
