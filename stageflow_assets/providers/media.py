"""ffmpeg/ffprobe as a resource: probe, demux to 16 kHz mono WAV, mux soft subtitles
(copying or re-encoding each stream as the container needs: providers/containers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
from pydantic import BaseModel

from stageflow_assets.core.errors import BadInputError, ProviderError, ToolRefusedError
from stageflow_assets.providers.containers import StreamPlan, codec_args, explain_failure, plan_streams
from stageflow_assets.providers.process import last_line, run_tool, tool_version


class StreamInfo(BaseModel):
    index: int
    kind: str
    codec: str = ""
    language: str | None = None
    start_time: float = 0.0
    duration: float | None = None
    fps: float | None = None


class ProbeResult(BaseModel):
    format_name: str
    duration: float
    streams: list[StreamInfo]

    def of_kind(self, kind: str) -> list[StreamInfo]:
        return [s for s in self.streams if s.kind == kind]


class SubtitleTrack(BaseModel):
    path: Path
    language: str  # ISO 639-2 code written into the container
    title: str


def _rate(value: str | None) -> float | None:
    """ffprobe's "25/1" or "30000/1001" as frames per second; "0/0" means unknown."""
    try:
        num, den = (float(x) for x in (value or "").split("/"))
    except ValueError:
        return None
    return round(num / den, 3) if num > 0 and den > 0 else None


class MediaTools(dg.ConfigurableResource):
    """ffmpeg and ffprobe from PATH (Debian `ffmpeg`), run with timeouts in their own group."""

    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    probe_timeout_s: float = 60
    timeout_s: float = 4 * 3600

    def versions(self) -> dict[str, str]:
        return {"ffmpeg": tool_version(self.ffmpeg)}

    def probe(self, path: Path) -> ProbeResult:
        """Streams and duration; a file ffprobe cannot read is bad input, not a crash."""
        if not path.is_file():
            raise BadInputError(f"{path}: no such file", input=str(path))
        if path.stat().st_size == 0:
            raise BadInputError(f"{path.name}: the file is empty", input=str(path))
        result = run_tool(
            [self.ffprobe, "-v", "error", "-print_format", "json", "-show_format",
             "-show_streams", str(path)],
            timeout_s=self.probe_timeout_s,
            check=False,
        )
        if result.returncode != 0:
            raise BadInputError(
                f"{path.name}: not a readable video ({last_line(result.stderr)}); "
                "check that the file is a complete video",
                input=str(path),
                ffprobe=result.stderr[-1000:],
            )
        data = json.loads(result.stdout or "{}")
        fmt = data.get("format", {})
        streams = [
            StreamInfo(
                index=s["index"],
                kind=s.get("codec_type", "unknown"),
                codec=s.get("codec_name", ""),
                language=(s.get("tags") or {}).get("language"),
                start_time=float(s.get("start_time") or 0.0),
                duration=float(s["duration"]) if s.get("duration") else None,
                fps=_rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate")),
            )
            for s in data.get("streams", [])
        ]
        duration = float(fmt.get("duration") or 0.0)
        return ProbeResult(format_name=fmt.get("format_name", ""), duration=duration, streams=streams)

    def extract_audio(self, src: Path, dst: Path, sample_rate: int = 16000) -> None:
        """First audio stream → mono PCM WAV, padded so t=0 is the container's t=0."""
        run_tool(
            [self.ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(src),
             "-map", "0:a:0", "-vn", "-af", "aresample=async=1:first_pts=0",
             "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le", "-f", "wav", str(dst)],
            timeout_s=self.timeout_s,
        )

    def plan_mux(self, video: Path, container: str = "mkv", burn_in: bool = False) -> list[StreamPlan]:
        """What each stream of `video` becomes in `container` (copy, transcode or drop), and why."""
        return plan_streams(self.probe(video).streams, container, burn_in)

    def mux(
        self, video: Path, tracks: list[SubtitleTrack], dst: Path, container: str = "mkv",
        burn_in: Path | None = None, plans: list[StreamPlan] | None = None, source_name: str | None = None,
    ) -> list[StreamPlan]:
        """Copy the streams `container` holds, re-encode the others (H.264/AAC), add one soft
        subtitle track per language (MKV: SRT, MP4: mov_text, the only text codec MP4 takes),
        optionally burning one ASS file into the picture. Returns the per-stream plan it followed;
        a failure's one line calls the video `source_name` (default: its file name)."""
        if not tracks:
            raise ProviderError("no subtitle tracks to mux")
        plans = plans if plans is not None else self.plan_mux(video, container, burn_in is not None)
        # +genpts: packets without timestamps (MPEG-PS, some AVI) cannot be copied into MKV otherwise
        args = [self.ffmpeg, "-nostdin", "-v", "error", "-y", "-fflags", "+genpts", "-i", str(video)]
        for track in tracks:
            args += ["-i", str(track.path)]
        # the filter parses its argument, so it gets a plain relative name in its own dir
        args += codec_args(plans, container, burn_in.name if burn_in is not None else None)
        first_sub = sum(1 for p in plans if p.action != "drop")
        for n, track in enumerate(tracks):
            args += ["-map", f"{n + 1}:0", f"-c:{first_sub + n}", "mov_text" if container == "mp4" else "srt",
                     f"-metadata:s:s:{n}", f"language={track.language}",
                     f"-metadata:s:s:{n}", f"title={track.title}"]
        args += ["-f", "mp4" if container == "mp4" else "matroska", str(dst.resolve())]
        try:
            run_tool(args, timeout_s=self.timeout_s, cwd=burn_in.parent if burn_in else None)
        except ProviderError as exc:
            stderr = exc.details.get("stderr")
            if stderr is None:  # not ffmpeg's own answer (not installed, timed out): as it is
                raise
            inputs = {str(video): "the source video"}
            inputs.update({str(t.path): f"the {t.title} subtitles" for t in tracks})
            failure = explain_failure(stderr, plans, container, source_name or video.name, inputs)
            error_type = ProviderError if failure.retryable else ToolRefusedError
            raise error_type(failure.message, streams=[p.record() for p in plans], args=exc.details.get("args"),
                             stderr=stderr) from exc
        return plans
