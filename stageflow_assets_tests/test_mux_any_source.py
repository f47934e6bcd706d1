"""Issue 11 end to end: a VP8/Vorbis WebM with real speech to MP4 and MKV through the CLI, an
H.264/AAC MP4 still stream-copied, and failures inside the runs that name what to fix."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.runs import execute_partition
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.subtitles import stage_dirs
from stageflow_assets.subtitles.partitions import job_language_partitions, subtitle_job_partitions
from stageflow_assets.subtitles.registry import register_video
from stageflow_assets_tests.conftest import run_cli
from stageflow_assets_tests.media_checks import decode_errors, packets
from stageflow_assets_tests.media_checks import streams as probe

pytestmark = pytest.mark.slow


def stage_dir(job: str, spec, lang: str | None = None) -> Path:
    return Path(os.environ["STAGEFLOW_HOME"], stage_dirs.DOMAIN, job, spec.dir_name, *([lang] if lang else []))


def mux_manifest(job: str) -> dict:
    return json.loads((stage_dir(job, stage_dirs.SUBTITLED_VIDEO) / "manifest.json").read_text())


@pytest.fixture(scope="module")
def webm(speech_video, tmp_path_factory) -> Path:
    """The espeak speech video as VP8/Vorbis WebM, the source of the report."""
    out = tmp_path_factory.mktemp("webm") / "talk.webm"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(speech_video), "-c:v", "libvpx", "-b:v", "300k",
                    "-c:a", "libvorbis", str(out)], check=True, timeout=300)
    assert [s["codec_name"] for s in probe(out)] == ["vp8", "vorbis"]
    return out


def subtitle(webm: Path, out: Path, container: str) -> tuple[str, Path]:
    result = run_cli("subtitles", webm, "--lang", "es", "--lang", "en", "--container", container, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.error_lines == []
    job = result.value("job")[0]
    return job, out / f"{job}.{container}"


def test_vp8_vorbis_webm_to_mp4_is_reencoded_where_mp4_needs_it(webm, tmp_path):
    job, video = subtitle(webm, tmp_path / "out", "mp4")

    streams = probe(video)
    assert [(s["codec_type"], s["codec_name"]) for s in streams] == [
        ("video", "h264"), ("audio", "aac"), ("subtitle", "mov_text"), ("subtitle", "mov_text")]
    assert streams[0]["pix_fmt"] == "yuv420p"
    assert [s["tags"]["language"] for s in streams[2:]] == ["spa", "eng"]
    assert decode_errors(video) == ""
    source_duration = float(probe(webm)[1].get("duration") or 0) or None
    if source_duration:
        assert abs(float(streams[1]["duration"]) - source_duration) < 0.5
    details = mux_manifest(job)["details"]
    assert [s["decision"] for s in details["streams"]] == [
        "transcode (vp8 → h264, MP4 cannot hold vp8)", "transcode (vorbis → aac, few players play vorbis in MP4)"]
    assert details["transcoded"] == ["0:0", "0:1"]


def test_the_same_webm_to_mkv_copies_both_streams(webm, tmp_path):
    job, video = subtitle(webm, tmp_path / "out", "mkv")

    streams = probe(video)
    assert [(s["codec_type"], s["codec_name"]) for s in streams] == [
        ("video", "vp8"), ("audio", "vorbis"), ("subtitle", "subrip"), ("subtitle", "subrip")]
    assert [s["tags"]["language"] for s in streams[2:]] == ["spa", "eng"]
    for spec in ("0:0", "0:1"):
        assert packets(video, spec) == packets(webm, spec)
    assert [s["decision"] for s in mux_manifest(job)["details"]["streams"]] == ["copy", "copy"]
    assert mux_manifest(job)["details"]["transcoded"] == []


def test_an_h264_aac_mp4_is_still_stream_copied(speech_video, tmp_path):
    source = tmp_path / "plain.mp4"
    shutil.copyfile(speech_video, source)

    job, video = subtitle(source, tmp_path / "out", "mp4")

    assert [s["codec_name"] for s in probe(video)] == ["h264", "aac", "mov_text", "mov_text"]
    for spec in ("0:0", "0:1"):
        assert packets(video, spec) == packets(source, spec)  # not one packet re-encoded
    assert [s["decision"] for s in mux_manifest(job)["details"]["streams"]] == ["copy", "copy"]


def _events(instance, run_id: str, kind) -> list:
    return instance.get_records_for_run(run_id, of_type=kind).records


def test_a_mux_failure_says_what_to_fix_once_with_ffmpegs_words_in_metadata(webm, tmp_path):
    job, _ = subtitle(webm, tmp_path / "out", "mp4")
    srt = stage_dir(job, stage_dirs.SUBTITLES, "es") / "subtitles.srt"
    good = srt.read_bytes()
    srt.write_bytes(bytes(range(256)) * 8)  # the es subtitles broke after they were written
    try:
        with dg.DagsterInstance.get() as instance:
            config = {"ops": {"subtitled_video": {"config": {"languages": ["es"], "container": "mp4"}}}}
            outcome = execute_partition(instance, "subtitle_mux_job", subtitle_job_partitions, job,
                                        {JOB_TAG: job}, config)
            retried = _events(instance, outcome.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
            (failed,) = _events(instance, outcome.run_id, dg.DagsterEventType.STEP_FAILURE)
    finally:
        srt.write_bytes(good)

    assert not outcome.success and retried == []
    assert outcome.error == (f"ffmpeg could not write the MP4 of {webm.name}: the Spanish subtitles "
                             f"({srt}): Invalid data found when processing input; re-materialize the stage "
                             "that made it")
    metadata = failed.event_log_entry.dagster_event.step_failure_data.user_failure_data.metadata
    assert "Invalid data found when processing input" in metadata["stderr"].value
    failed_manifest = json.loads((stage_dir(job, stage_dirs.SUBTITLED_VIDEO) / "manifest.failed.json").read_text())
    assert failed_manifest["errors"][0]["type"] == "ToolRefusedError"
    assert failed_manifest["errors"][0]["details"]["streams"][0]["decision"].startswith("transcode (vp8 → h264")


def test_a_glossary_broken_after_the_cli_checked_it_fails_the_language_step_once(webm, tmp_path):
    """Inside the run the glossary is read before the stage's work: it still fails once, naming it."""
    job, _ = subtitle(webm, tmp_path / "out", "mkv")
    terms = tmp_path / "terms.csv"
    terms.write_bytes(b"house,es,casa\n\x89PNG\r\n\x1a\n\x00\x00")
    paths = StageStore().paths
    register_video(paths, webm, terms)  # as `stageflow subtitles --glossary` records it
    try:
        with dg.DagsterInstance.get() as instance:
            outcome = execute_partition(instance, "subtitle_language_job", job_language_partitions,
                                        dg.MultiPartitionKey({"job": job, "lang": "es"}), {JOB_TAG: job})
            retried = _events(instance, outcome.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
            failures = _events(instance, outcome.run_id, dg.DagsterEventType.STEP_FAILURE)
    finally:
        register_video(paths, webm)

    assert not outcome.success
    assert retried == [] and len(failures) == 1
    assert outcome.error.startswith(f"{terms.resolve()} line 2: binary data (byte 14), not UTF-8 text")
