"""Is an audio file really playable? Decode all of it, in process.

`ffprobe` per file reads a header: a process start per file (most of a 1,000-word deck's check
time) and it passes a file cut short or damaged in the middle, since the header still looks
right. Decoding every frame with FFmpeg's own decoder through PyAV takes about a millisecond
per spoken word and no process, and fails on what a player would stumble over: no audio stream,
another codec, undecodable frames, nothing decoded, or fewer samples than the header announces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stageflow_assets.core.errors import BadInputError


@dataclass(frozen=True)
class DecodedAudio:
    container: str
    codec: str
    seconds: float  # of decoded samples
    announced_s: float | None  # what the container's header says, where it says


def decode_audio(path: Path, codec: str) -> DecodedAudio:
    """Decode every frame of `path`, an audio file of `codec` (e.g. "mp3"); BadInputError
    with the reason when it is not wholly decodable audio of that codec."""
    import av

    if not path.is_file():
        raise BadInputError(f"{path.name}: no such file", input=str(path))
    if path.stat().st_size == 0:
        raise BadInputError(f"{path.name}: the file is empty", input=str(path))
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise BadInputError(f"{path.name}: no audio stream", input=str(path))
            stream = container.streams.audio[0]
            found = stream.codec_context.codec.name
            if not found.startswith(codec):  # FFmpeg's MP3 decoder is `mp3float`
                raise BadInputError(f"{path.name}: codec {found}, expected {codec}", input=str(path))
            samples = 0
            for packet in container.demux(stream):
                for frame in packet.decode():
                    samples += frame.samples
            rate = stream.codec_context.sample_rate or stream.sample_rate
            announced = container.duration / 1_000_000 if container.duration else None
            result = DecodedAudio(container.format.name, found, samples / rate if rate else 0.0, announced)
    except av.FFmpegError as exc:
        raise BadInputError(f"{path.name}: does not decode ({exc.strerror or exc})", input=str(path)) from exc
    if result.seconds <= 0:
        raise BadInputError(f"{path.name}: no audio decoded", input=str(path))
    # a file cut short keeps its header: decoded samples fall short of the announced length
    # (one MP3 frame, 1152 samples, of slack for encoder padding)
    if result.announced_s is not None and result.seconds + 1152 / rate < result.announced_s:
        raise BadInputError(f"{path.name}: decodes {result.seconds:.3f}s of the {result.announced_s:.3f}s "
                            "its header announces (cut short?)", input=str(path))
    return result
