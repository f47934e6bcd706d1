"""Sample media made on the spot (ffmpeg lavfi + espeak-ng speech): the demo and tests use it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stageflow_assets.core.paths import atomic_path
from stageflow_assets.providers.process import run_tool

SAMPLE_TEXT = (
    "Welcome to the stageflow demo. This short video was made by a machine. "
    "Every stage of the pipeline is a Dagster asset, and you can follow it in the user interface."
)


def speech_wav(text: str, dst: Path, voice: str = "en-us", speed: int = 150) -> Path:
    with atomic_path(dst) as tmp:
        run_tool(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(tmp), text], timeout_s=120)
    return dst


def video_from_audio(audio: Path, dst: Path, size: str = "320x240", container: str = "mp4") -> Path:
    """A black video track over `audio` (H.264 + AAC), as long as the audio."""
    with atomic_path(dst) as tmp:
        run_tool(
            ["ffmpeg", "-nostdin", "-v", "error", "-y",
             "-f", "lavfi", "-i", f"color=c=black:s={size}:r=25", "-i", str(audio),
             "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-f", container, str(tmp)],
            timeout_s=600,
        )
    return dst


def sample_video(dst: Path, text: str = SAMPLE_TEXT, voice: str = "en-us") -> Path:
    wav = dst.with_suffix(".speech.wav")
    speech_wav(text, wav, voice)
    try:
        return video_from_audio(wav, dst)
    finally:
        wav.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the demo's sample video.")
    parser.add_argument("out", type=Path, help="where to write the .mp4")
    args = parser.parse_args(argv)
    print(sample_video(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
