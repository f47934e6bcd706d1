"""Journey stage 4, offline: output specs, seeded PNG images, synthesised WAV/MP3 music and
H.264 video, read back with Pillow, `wave` and the real ffprobe/ffmpeg."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stageflow_assets.core.errors import BadInputError, ProviderError
from stageflow_assets.journey import offline_media
from stageflow_assets.journey.offline_media import GeneratedMedia, OutputConfig, make_offline

PROMPT = "a lighthouse on a cliff at sunset"


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec, expected", [
    ("image", dict(kind="image", width=512, height=512, format="png", backend="offline", label="image 512x512")),
    ("image:1024x768", dict(width=1024, height=768, label="image 1024x768")),
    ("image:512x512,comfyui", dict(backend="comfyui", label="image 512x512 comfyui")),
    ("music", dict(kind="music", seconds=8.0, format="wav", tempo=None, width=None, label="music 8 s wav")),
    ("music:20s,tempo=96,mp3", dict(seconds=20.0, tempo=96, format="mp3", media_type="audio/mpeg",
                                    label="music 20 s mp3 96 bpm")),
    ("Music: 2.5s , 120bpm", dict(seconds=2.5, tempo=120)),
    ("video", dict(kind="video", width=320, height=240, seconds=3.0, fps=12, format="mp4",
                   label="video 320x240 3 s 12 fps")),
    ("video:640x360,4s,fps=24", dict(width=640, height=360, seconds=4.0, fps=24, media_type="video/mp4")),
])
def test_parse_accepts_the_output_syntax(spec, expected):
    found = OutputConfig.parse(spec).as_dict()
    assert {k: found[k] for k in expected} == expected


@pytest.mark.parametrize("spec, reason", [
    ("", "no kind"),
    ("picture:512x512", "unknown kind 'picture'"),
    ("image:10x10", "image sides must be 16-4096 pixels"),
    ("image:5000x512", "image sides must be 16-4096 pixels"),
    ("image:512", "unknown option '512'"),
    ("image:512x512,", "an empty option"),
    ("image:512x512,640x480", "'640x480' repeats the size"),
    ("image:3s", "an image takes no length"),
    ("image:512x512,mp3", "image is written as png, not mp3"),
    ("image:500x500,comfyui", "multiples of 8"),
    ("music:512x512", "music takes no size"),
    ("music:700s", "music length must be 0.5-600 s"),
    ("music:tempo=20", "tempo must be 40-240 bpm"),
    ("music:fps=12", "fps is for video only"),
    ("music:comfyui", "the comfyui backend makes images only"),
    ("video:61s", "video length must be 0.5-60 s"),
    ("video:fps=0", "fps must be 1-60"),
    ("video:fps=90", "fps must be 1-60"),
    ("video:641x360", "video sides must be even"),
    ("video:4000x2000", "video sides must be 16-1920 pixels"),
    ("video:tempo=90", "tempo is for music only"),
])
def test_parse_rejects_a_bad_spec_in_one_line(spec, reason):
    with pytest.raises(BadInputError) as caught:
        OutputConfig.parse(spec)
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith(f"--output {spec!r}: ")
    assert reason in message
    assert "expected KIND[:OPTION,...]" in message
    assert not caught.value.retryable


def test_a_config_built_directly_is_checked_too():
    with pytest.raises(BadInputError, match="video sides must be even"):
        OutputConfig("video", width=321, height=240)
    with pytest.raises(BadInputError, match="give both width and height"):
        OutputConfig("image", width=320)


# --------------------------------------------------------------------------- images
def test_an_image_is_reproducible_from_seed_and_prompt(tmp_path):
    config = OutputConfig.parse("image")
    first = make_offline(config, PROMPT, 7, tmp_path / "a", "img")
    again = make_offline(config, PROMPT, 7, tmp_path / "b", "img")
    other_seed = make_offline(config, PROMPT, 8, tmp_path / "c", "img")
    other_prompt = make_offline(config, "a cat asleep on a windowsill", 7, tmp_path / "d", "img")
    assert isinstance(first, GeneratedMedia)
    assert first.path == tmp_path / "a" / "img.png"
    assert first.path.read_bytes() == again.path.read_bytes()
    assert first.sha256 == again.sha256
    assert other_seed.path.read_bytes() != first.path.read_bytes()
    assert other_prompt.path.read_bytes() != first.path.read_bytes()
    assert (first.media_type, first.backend, first.model) == ("image/png", "offline", "procedural-v1")
    assert first.parameters["seed"] == 7 and first.parameters["prompt"] == PROMPT
    assert (first.parameters["width"], first.parameters["height"]) == (512, 512)
    assert first.parameters["scene"]["mood"] == "dusk"  # "sunset" in the prompt
    assert json.loads(json.dumps(first.parameters)) == first.parameters  # plain JSON for the record
    assert first.duration_s < 1.0, f"512x512 took {first.duration_s}s"
    assert leftovers(tmp_path / "a") == []


def test_an_image_has_the_configured_size_and_is_a_picture(tmp_path):
    made = make_offline(OutputConfig.parse("image:1024x768"), "mountains by a lake", 3, tmp_path, "wide")
    with Image.open(made.path) as image:
        assert image.format == "PNG" and image.size == (1024, 768) and image.mode == "RGB"
        pixels = np.asarray(image, dtype=np.float32)
    # not a flat fill: varied colours across the frame, and a brighter sky than ground
    assert pixels.std() > 10
    rgb = pixels.astype(np.int64).reshape(-1, 3)
    assert len(np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])) > 1000
    assert pixels[: 768 // 4].mean() > pixels[-768 // 8:].mean()


# --------------------------------------------------------------------------- music
def test_music_is_a_wav_of_the_configured_length(tmp_path):
    config = OutputConfig.parse("music")
    made = make_offline(config, PROMPT, 11, tmp_path, "tune")
    again = make_offline(config, PROMPT, 11, tmp_path / "again", "tune")
    assert made.path.name == "tune.wav" and made.media_type == "audio/wav"
    assert made.path.read_bytes() == again.path.read_bytes()
    with wave.open(str(made.path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 44100)
        assert wav.getnframes() / wav.getframerate() == pytest.approx(8.0)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float64)
    assert np.sqrt((samples ** 2).mean()) > 1000  # audible, not silence
    assert np.abs(samples).max() < 32767          # normalised, no clipping
    params = made.parameters
    assert params["duration_s"] == 8.0 and 72 <= params["tempo"] <= 132
    assert params["score"]["mode"] and params["score"]["key"] and params["score"]["notes"] > 10
    assert json.loads(json.dumps(params)) == params
    assert made.duration_s < 1.0, f"8 s of music took {made.duration_s}s"


def test_music_takes_the_tempo_and_a_different_seed_changes_it(tmp_path):
    slow = make_offline(OutputConfig.parse("music:3s,tempo=60"), PROMPT, 1, tmp_path, "slow")
    other = make_offline(OutputConfig.parse("music:3s,tempo=60"), PROMPT, 2, tmp_path, "other")
    assert slow.parameters["tempo"] == slow.parameters["score"]["tempo"] == 60
    assert slow.path.read_bytes() != other.path.read_bytes()


def test_music_as_mp3_through_ffmpeg(tmp_path):
    made = make_offline(OutputConfig.parse("music:5s,tempo=100,mp3"), PROMPT, 4, tmp_path, "tune")
    assert made.path.name == "tune.mp3" and made.media_type == "audio/mpeg"
    found = probe(made.path)
    (stream,) = found["streams"]
    assert stream["codec_name"] == "mp3" and stream["sample_rate"] == "44100" and stream["channels"] == 2
    assert float(found["format"]["duration"]) == pytest.approx(5.0, abs=0.1)
    assert made.parameters["encoder"] == "libmp3lame" and made.parameters["tempo"] == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tune.mp3"]  # no WAV or temp file left


# --------------------------------------------------------------------------- video
def first_and_last_frames(path: Path, width: int, height: int) -> tuple[bytes, bytes]:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True, timeout=60).stdout
    size = width * height * 3
    return raw[:size], raw[-size:]


def test_video_is_h264_with_the_configured_fps_frames_and_size(tmp_path):
    made = make_offline(OutputConfig.parse("video"), "waves on a quiet sea", 5, tmp_path, "clip")
    assert made.path.name == "clip.mp4" and made.media_type == "video/mp4"
    (stream,) = probe(made.path)["streams"]
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    assert (stream["width"], stream["height"]) == (320, 240)
    assert stream["r_frame_rate"] == "12/1" and int(stream["nb_frames"]) == 36
    assert made.parameters["frames"] == 36 and made.parameters["fps"] == 12 and made.parameters["codec"] == "h264"
    first, last = first_and_last_frames(made.path, 320, 240)
    assert first != last  # it moves
    assert json.loads(json.dumps(made.parameters)) == made.parameters
    assert made.duration_s < 5.0, f"a 3 s 320x240 video took {made.duration_s}s"
    assert leftovers(tmp_path) == []


def test_a_long_video_is_encoded_in_parts_and_joined(tmp_path, monkeypatch):
    monkeypatch.setattr(offline_media, "RAW_CHUNK_BYTES", 64 * 48 * 3 * 10)  # ten frames a part
    made = make_offline(OutputConfig.parse("video:64x48,2s,fps=12"), PROMPT, 9, tmp_path, "clip")
    assert made.parameters["parts"] == 3
    (stream,) = probe(made.path)["streams"]
    assert int(stream["nb_frames"]) == 24 and stream["r_frame_rate"] == "12/1"
    assert leftovers(tmp_path) == []


def test_without_ffmpeg_a_video_fails_in_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(ProviderError, match="^ffmpeg is not installed"):
        make_offline(OutputConfig.parse("video:32x32,1s,fps=2"), PROMPT, 1, tmp_path, "clip")
    assert list(tmp_path.iterdir()) == []
