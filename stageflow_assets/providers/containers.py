"""Which source streams an MP4 or MKV takes as they are, which are re-encoded, and why.

Measured against Debian's ffmpeg 5.1 with `-c copy`: its MP4 muxer refuses vp8, theora,
prores, ffv1, huffyuv, wmv, flv, h263, gif, raw video and every PCM, calls flac and truehd
experimental, and accepts vorbis, mp2 and dts under private or rarely played mappings. So MP4
copies only the codecs players expect there and re-encodes the rest to H.264 (yuv420p) and
AAC; MKV copies everything but raw video (its muxer takes raw YUV only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Protocol

MP4_VIDEO = {"h264", "hevc", "av1", "vp9", "mpeg4"}
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus"}
MKV_REENCODE = {"rawvideo"}
TARGET = {"video": "h264", "audio": "aac"}
NAMES = {"mp4": "MP4", "mkv": "MKV"}


class Stream(Protocol):
    index: int
    kind: str
    codec: str


@dataclass(frozen=True)
class StreamPlan:
    """What happens to one source stream: `copy`, `transcode` (to `target`) or `drop`."""

    index: int
    kind: str
    codec: str
    action: str
    target: str = ""
    reason: str = ""

    @property
    def decision(self) -> str:
        if self.action == "transcode":
            return f"transcode ({self.codec} → {self.target}, {self.reason})"
        return self.action if self.action == "copy" else f"drop ({self.reason})"

    def record(self) -> dict[str, object]:
        return {"stream": f"0:{self.index}", "kind": self.kind, "codec": self.codec, "action": self.action,
                "target": self.target or (self.codec if self.action == "copy" else ""),
                "reason": self.reason, "decision": self.decision}


def _why_not(kind: str, codec: str, container: str) -> str | None:
    """Why `container` should not take a `kind` stream in `codec` as it is; None if it can."""
    name = NAMES[container]
    if container == "mkv":
        return f"{name} takes raw video only as YUV" if codec in MKV_REENCODE else None
    allowed = MP4_VIDEO if kind == "video" else MP4_AUDIO
    if codec in allowed:
        return None
    if codec in ("vorbis", "mp2", "dts"):
        return f"few players play {codec} in {name}"
    if codec in ("flac", "truehd"):
        return f"{codec} in {name} is experimental in ffmpeg"
    return f"{name} cannot hold {codec or 'an unknown codec'}"


def plan_streams(streams: Iterable[Stream], container: str, burn_in: bool = False) -> list[StreamPlan]:
    """Per source stream: copy what `container` holds, transcode video to H.264 and audio to
    AAC otherwise (all video when subtitles are burnt in), drop what the output does not carry."""
    plans = []
    for stream in streams:
        if stream.kind not in TARGET:
            why = ("its own subtitle tracks replace the source's" if stream.kind == "subtitle"
                   else f"a {stream.kind} stream is not carried")
            plans.append(StreamPlan(stream.index, stream.kind, stream.codec, "drop", reason=why))
            continue
        why = "burning the subtitles in" if burn_in and stream.kind == "video" else \
            _why_not(stream.kind, stream.codec, container)
        if why is None:
            plans.append(StreamPlan(stream.index, stream.kind, stream.codec, "copy"))
        else:
            plans.append(StreamPlan(stream.index, stream.kind, stream.codec, "transcode",
                                    TARGET[stream.kind], why))
    return plans


def codec_args(plans: list[StreamPlan], container: str, burn_in_name: str | None) -> list[str]:
    """ffmpeg's `-map` and per-output-stream options for the streams kept, in source order."""
    args: list[str] = []
    kept = [p for p in plans if p.action != "drop"]
    for plan in kept:
        args += ["-map", f"0:{plan.index}"]
    for out, plan in enumerate(kept):
        if plan.action == "copy":
            args += [f"-c:{out}", "copy"]
            if container == "mp4" and plan.codec == "hevc":
                args += [f"-tag:{out}", "hvc1"]  # hev1 (what MKV sources give) is refused by Apple players
        elif plan.kind == "video":
            # yuv420p, the one chroma layout every H.264 player decodes, needs even dimensions
            chain = [f"subtitles={burn_in_name}"] if burn_in_name else []
            chain.append("scale=trunc(iw/2)*2:trunc(ih/2)*2")
            args += [f"-filter:{out}", ",".join(chain), f"-c:{out}", "libx264", f"-preset:{out}", "veryfast",
                     f"-crf:{out}", "20", f"-pix_fmt:{out}", "yuv420p"]
        else:
            args += [f"-c:{out}", "aac"]
    return args


_REFUSED = re.compile(r"Could not find tag for codec (\S+) in stream #(\d+)")
_EXPERIMENTAL = re.compile(r"(\S+) in MP4 support is experimental")
_OUTPUT_STREAM = re.compile(r"output stream (?:#)?0:(\d+)")
_BAD_INPUT = re.compile(r"^(.+): (Invalid data found when processing input|No such file or directory|"
                        r"Permission denied|Invalid argument)$", re.MULTILINE)


@dataclass(frozen=True)
class MuxFailure:
    message: str
    retryable: bool


def explain_failure(stderr: str, plans: list[StreamPlan], container: str, video_name: str,
                    inputs: dict[str, str]) -> MuxFailure:
    """ffmpeg's stderr as one line that names the stream or file at fault and what to do.

    `inputs` maps the paths given to ffmpeg to what they are (e.g. "the es subtitles").
    """
    kept = [p for p in plans if p.action != "drop"]
    name = NAMES[container]
    head = f"ffmpeg could not write the {name} of {video_name}"
    details = "; ffmpeg's messages are in the failure's stderr metadata"

    def stream(out: int, codec: str | None = None) -> str:
        if out < len(kept):
            plan = kept[out]
            done = "copied" if plan.action == "copy" else f"re-encoded to {plan.target}"
            return f"stream 0:{plan.index} ({codec or plan.codec}, {done})"
        return f"subtitle track {out - len(kept) + 1}"

    refused = _REFUSED.search(stderr) or _EXPERIMENTAL.search(stderr)
    if refused is not None:
        codec = refused.group(1)
        where = stream(int(refused.group(2)), codec) if refused.re is _REFUSED else f"a {codec} stream"
        other = "mkv" if container == "mp4" else "mp4"
        return MuxFailure(f"{head}: {name} cannot hold {where}; try --container {other}, and report it "
                          f"(stageflow should have re-encoded it){details}", retryable=False)
    bad = _BAD_INPUT.search(stderr)
    if bad is not None and bad.group(1) in inputs:
        return MuxFailure(f"{head}: {inputs[bad.group(1)]} ({bad.group(1)}): {bad.group(2)}; "
                          "re-materialize the stage that made it", retryable=False)
    failing = _OUTPUT_STREAM.search(stderr)
    where = f" at {stream(int(failing.group(1)))}" if failing else ""
    return MuxFailure(f"{head}{where}: {_first_error(stderr)}{details}", retryable=True)


def _first_error(stderr: str) -> str:
    """The first line that says what went wrong (ffmpeg's last line is often only `Error ... --`)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(("Error initializing output stream", "Conversion failed")):
            return line.rstrip(" -")
    return lines[-1] if lines else "no message"
