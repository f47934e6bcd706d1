"""What tests ask of a media file, through ffprobe/ffmpeg: its streams, a stream's packets, a full decode."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def streams(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


def packets(path: Path, spec: str) -> str:
    """The checksum of every packet of one stream: equal for a stream copied untouched."""
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", spec, "-c", "copy",
                           "-f", "streamhash", "-hash", "md5", "-"], capture_output=True, text=True,
                          check=True).stdout.split("=")[-1].strip()


def decode_errors(path: Path) -> str:
    """What ffmpeg reports decoding the whole file: empty when it decodes cleanly."""
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                          capture_output=True, text=True).stderr
