"""Issue-3 outputs through the CLI: ASS, MP4 with mov_text, burn-in, glossary, other source languages."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pysubs2
import pytest

from stageflow_assets.demo import sample_video
from stageflow_assets_tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _streams(video: Path, kind: str) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", kind, "-show_entries",
                          "stream=codec_name:stream_tags=language", "-of", "json", str(video)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


def _max_pixel(video: Path, at: float) -> int:
    frame = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(at), "-i", str(video), "-frames:v", "1",
                            "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    return max(frame)


def _manifest(job: str, stage: str, lang: str | None = None) -> dict:
    path = Path(os.environ["STAGEFLOW_HOME"], "subtitles", job, stage, *([lang] if lang else []), "manifest.json")
    return json.loads(path.read_text())


def test_mp4_burn_in_ass_and_glossary(speech_video, tmp_path):
    video = tmp_path / "formats.mp4"
    shutil.copyfile(speech_video, video)
    terms = tmp_path / "terms.csv"
    terms.write_text("source,target_language,target\nhouse,es,CASONA\n")
    out = tmp_path / "out"
    result = run_cli("subtitles", video, "--lang", "es", "--lang", "en", "--container", "mp4",
                     "--burn-in", "es", "--glossary", terms, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    job = result.value("job")[0]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{job}.{lang}.{ext}" for lang in ("es", "en") for ext in ("srt", "vtt", "ass")] + [f"{job}.mp4"]
    )
    assert [(s["codec_name"], s["tags"]["language"]) for s in _streams(out / f"{job}.mp4", "s")] == [
        ("mov_text", "spa"), ("mov_text", "eng")
    ]
    spanish = pysubs2.load(str(out / f"{job}.es.srt"))
    assert "CASONA" in " ".join(e.plaintext for e in spanish)
    assert _manifest(job, "05_translation", "es")["details"]["glossary_missing"] == 0
    styled = pysubs2.load(str(out / f"{job}.es.ass"))
    assert styled.styles["Default"].fontname == "DejaVu Sans" and styled.styles["Default"].fontsize == 54
    assert len(styled) == len(spanish)
    # the source picture is pure black: burnt-in text lights pixels up while a cue is shown
    cue = spanish[0]
    assert _max_pixel(out / f"{job}.mp4", (cue.start + cue.end) / 2000) > 100
    assert _max_pixel(video, (cue.start + cue.end) / 2000) < 30
    checks = _manifest(job, "06_subtitles", "es")["details"]["violations"]
    assert checks["overlap"] == checks["empty"] == checks["non_monotonic"] == 0


def test_other_source_language_uses_whisper_for_english_and_skips_unserved(tmp_path):
    # German: Debian ships no Apertium pair from German (French–Spanish is installed for journeys)
    video = sample_video(tmp_path / "deutsch.mp4", voice="de",
                         text="Guten Morgen. Ich heiße Marie. Ich wohne in Berlin. Ich trinke gern Kaffee und esse Schokolade.")
    result = run_cli("subtitles", video, "--lang", "en", "--lang", "es", "--out", tmp_path / "out", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    job = result.value("job")[0]
    assert _manifest(job, "03_transcript")["details"]["language"] == "de"
    english = _manifest(job, "05_translation", "en")
    assert english["config"]["backend"] == "whisper-translate" and english["details"]["own_timing"]
    assert _manifest(job, "05_translation", "es")["status"] == "skipped"
    assert any(line.startswith("es:") and "de→es" in line for line in result.value("skipped"))
    text = " ".join(e.plaintext for e in pysubs2.load(str(tmp_path / "out" / f"{job}.en.srt"))).lower()
    assert sum(word in text for word in ("marie", "coffee", "chocolate", "morning")) >= 2, text
    assert [s["tags"]["language"] for s in _streams(tmp_path / "out" / f"{job}.mkv", "s")] == ["eng"]
