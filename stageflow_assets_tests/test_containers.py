"""MP4 and MKV from any source: copy what the container holds, re-encode the rest, explain failures.

Every case runs the real ffmpeg on small sources it builds (lavfi pictures and tones).
"""

import subprocess
from pathlib import Path

import pytest

from stageflow_assets.core.errors import ProviderError, ToolRefusedError
from stageflow_assets.providers.containers import StreamPlan, plan_streams
from stageflow_assets.providers.media import MediaTools, StreamInfo, SubtitleTrack
from stageflow_assets_tests.media_checks import decode_errors, packets, streams

MEDIA = MediaTools()
# file name: (video encoder options, audio encoder options), codecs from everywhere
SOURCES = {
    "vp8-vorbis.webm": (["-c:v", "libvpx", "-b:v", "300k"], ["-c:a", "libvorbis"]),
    "theora-flac.mkv": (["-c:v", "libtheora"], ["-c:a", "flac"]),
    "mpeg2-mp2.mpg": (["-c:v", "mpeg2video"], ["-c:a", "mp2"]),
    "prores-pcm.mov": (["-c:v", "prores_ks"], ["-c:a", "pcm_s16le"]),
    "h264-aac.mp4": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac"]),
    "hevc-opus.mkv": (["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=none"],
                      ["-c:a", "libopus"]),
}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=300)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    srt = folder / "es.srt"
    srt.write_text("1\n00:00:00,200 --> 00:00:01,000\nHola\n\n2\n00:00:01,200 --> 00:00:01,800\nAdiós\n")
    built = {"es.srt": srt}
    for name, (video, audio) in SOURCES.items():
        built[name] = folder / name
        # an odd frame size where the encoder takes one: re-encoded to yuv420p it must become even
        size = "176x144" if video[1] in ("libx264", "libx265") else "175x143"
        ffmpeg("-f", "lavfi", "-i", f"testsrc=s={size}:r=25", "-f", "lavfi", "-i", "sine=f=330:r=48000",
               "-t", "2", *video, *audio, str(built[name]))
    return built


def spanish(sources) -> list[SubtitleTrack]:
    return [SubtitleTrack(path=sources["es.srt"], language="spa", title="Spanish")]


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_any_source_muxes_playably_and_copies_what_the_container_holds(sources, tmp_path, name, container):
    source = sources[name]
    out = tmp_path / f"out.{container}"

    plans = MEDIA.mux(source, spanish(sources), out, container)

    got = streams(out)
    assert [s["codec_type"] for s in got] == ["video", "audio", "subtitle"]
    assert got[2]["codec_name"] == ("mov_text" if container == "mp4" else "subrip")
    assert got[2]["tags"]["language"] == "spa"
    assert decode_errors(out) == ""
    before = streams(source)
    for plan, stream in zip(plans, got):
        assert plan.index == stream["index"] and plan.codec == before[plan.index]["codec_name"]
        if plan.action == "copy":
            assert stream["codec_name"] == plan.codec
            assert packets(out, f"0:{stream['index']}") == packets(source, f"0:{plan.index}")
        else:
            assert plan.action == "transcode" and plan.reason
            assert stream["codec_name"] == plan.target == ("h264" if plan.kind == "video" else "aac")
            if plan.kind == "video":
                assert stream["pix_fmt"] == "yuv420p" and (stream["width"], stream["height"]) == (174, 142)
    if container == "mp4":  # only what MP4 players expect, whatever came in
        assert got[0]["codec_name"] in {"h264", "hevc"} and got[1]["codec_name"] in {"aac", "opus"}


def test_the_decisions_for_the_issue_source_and_for_a_plain_mp4(sources):
    def decisions(name: str, container: str, burn_in: bool = False) -> list[str]:
        return [p.decision for p in MEDIA.plan_mux(sources[name], container, burn_in)]

    assert decisions("vp8-vorbis.webm", "mp4") == [
        "transcode (vp8 → h264, MP4 cannot hold vp8)", "transcode (vorbis → aac, few players play vorbis in MP4)"]
    assert decisions("vp8-vorbis.webm", "mkv") == ["copy", "copy"]
    assert decisions("h264-aac.mp4", "mp4") == ["copy", "copy"]
    assert decisions("prores-pcm.mov", "mp4") == [
        "transcode (prores → h264, MP4 cannot hold prores)", "transcode (pcm_s16le → aac, MP4 cannot hold pcm_s16le)"]
    assert decisions("h264-aac.mp4", "mkv", burn_in=True) == [
        "transcode (h264 → h264, burning the subtitles in)", "copy"]


def test_streams_the_output_does_not_carry_are_dropped_and_said_so():
    source = [StreamInfo(index=0, kind="video", codec="rawvideo"), StreamInfo(index=1, kind="audio", codec="alac"),
              StreamInfo(index=2, kind="subtitle", codec="ass"), StreamInfo(index=3, kind="data", codec="bin_data")]

    plans = plan_streams(source, "mkv")

    assert [p.decision for p in plans] == [
        "transcode (rawvideo → h264, MKV takes raw video only as YUV)", "copy",
        "drop (its own subtitle tracks replace the source's)", "drop (a data stream is not carried)"]
    assert plans[0].record() == {"stream": "0:0", "kind": "video", "codec": "rawvideo", "action": "transcode",
                                 "target": "h264", "reason": "MKV takes raw video only as YUV",
                                 "decision": "transcode (rawvideo → h264, MKV takes raw video only as YUV)"}


def test_a_refused_stream_is_named_with_what_to_do_and_ffmpegs_words_in_the_details(sources, tmp_path):
    wrong = [StreamPlan(0, "video", "vp8", "copy"), StreamPlan(1, "audio", "vorbis", "copy")]

    with pytest.raises(ToolRefusedError) as refused:
        MEDIA.mux(sources["vp8-vorbis.webm"], spanish(sources), tmp_path / "out.mp4", "mp4", plans=wrong)

    line = refused.value.message
    assert line.startswith("ffmpeg could not write the MP4 of vp8-vorbis.webm: MP4 cannot hold stream 0:0 (vp8, copied)")
    assert "try --container mkv" in line and "\n" not in line
    assert "Could not find tag for codec vp8" in refused.value.details["stderr"]
    assert refused.value.details["streams"][0]["decision"] == "copy"
    assert not refused.value.retryable
    assert not (tmp_path / "out.mp4").exists() or (tmp_path / "out.mp4").stat().st_size == 0


def test_an_unreadable_subtitle_file_is_named(sources, tmp_path):
    junk = tmp_path / "es.srt"
    junk.write_bytes(bytes(range(256)) * 8)

    with pytest.raises(ToolRefusedError) as refused:
        MEDIA.mux(sources["h264-aac.mp4"], [SubtitleTrack(path=junk, language="spa", title="Spanish")],
                  tmp_path / "out.mkv", "mkv")

    assert refused.value.message == (
        f"ffmpeg could not write the MKV of h264-aac.mp4: the Spanish subtitles ({junk}): "
        "Invalid data found when processing input; re-materialize the stage that made it")


def test_an_unexplained_failure_keeps_the_first_error_line_and_stays_retryable(sources, tmp_path):
    """A stream the source does not have: ffmpeg's own first words, not its closing `Error ... --`."""
    ghost = [StreamPlan(0, "video", "h264", "copy"), StreamPlan(7, "audio", "aac", "copy")]

    with pytest.raises(ProviderError) as failed:
        MEDIA.mux(sources["h264-aac.mp4"], spanish(sources), tmp_path / "out.mp4", "mp4", plans=ghost)

    assert failed.value.retryable and not isinstance(failed.value, ToolRefusedError)
    assert failed.value.message.startswith("ffmpeg could not write the MP4 of h264-aac.mp4: ")
    assert "0:7" in failed.value.message and "metadata" in failed.value.message
