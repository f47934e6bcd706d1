"""The subtitle pipeline, one asset per stage.

`source_video → audio → transcript` are partitioned by job (one video each);
`translation → subtitles` by job × language; `subtitled_video` gathers a job's languages.
"""


import os
import shutil
from pathlib import Path

import dagster as dg

from stageflow_assets.core import progress
from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.keys import slug
from stageflow_assets.core.manifest import StageManifest, stage_manifest
from stageflow_assets.core.stage import (
    FORCE_TAG, PROVIDER_RETRY, StageInput, StageWriter, one_line_failures, run_stage, stage_input,
)
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.asr import ASRBackend, Transcript
from stageflow_assets.providers.asr_whisperx import transcript_pool
from stageflow_assets.providers.media import MediaTools
from stageflow_assets.subtitles import segmenter, stage_dirs
from stageflow_assets.subtitles.models import CueDoc
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.subtitles.partitions import subtitle_job_partitions
from stageflow_assets.subtitles.registry import load_job

# a truncated file decodes to less audio than its header promises
TRUNCATION_TOLERANCE_S = 1.0


@dg.asset(
    partitions_def=subtitle_job_partitions,
    group_name=stage_dirs.DOMAIN,
    code_version="2",
    kinds={"ffmpeg"},
    metadata=stage_dirs.SOURCE_VIDEO.metadata,
)
@one_line_failures
def source_video(context: dg.AssetExecutionContext, storage: StageStore, media: MediaTools, asr: ASRBackend):
    """The registered video of one job, probed (duration, streams) and kept in its stage dir.

    Partitioned by job: each registered video is one partition. Files without an audio
    stream, empty or unreadable files fail here with the reason.
    """
    paths = storage.paths
    job = load_job(paths, str(context.partition_key))
    source = Path(job.source_path)
    warm_whisper(context, paths, job.job, asr)

    def work(out: StageWriter) -> None:
        probe = media.probe(source)
        audio = probe.of_kind("audio")
        if not audio:
            raise BadInputError(
                f"{source.name}: the video has no audio stream; give a video with speech",
                input=str(source), streams=[s.kind for s in probe.streams],
            )
        ext = slug(source.suffix.lstrip("."), max_len=8, fallback="bin")
        target = out.output(f"source.{ext}", kind="video", fmt=probe.format_name)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        out.details.update(
            original_name=job.original_name,
            duration_s=round(probe.duration, 3),
            container=probe.format_name,
            streams=[s.model_dump() for s in probe.streams],
            fps=next((v.fps for v in probe.of_kind("video") if v.fps), None),
            audio_start_s=audio[0].start_time,
            audio_duration_s=audio[0].duration or probe.duration,
        )

    return run_stage(
        context, paths, stage_dirs.SOURCE_VIDEO,
        inputs=[StageInput(source, kind="registered_video")],
        config={"registered_as": job.original_name},
        provider_versions=media.versions(), work=work,
    )


IN_PROCESS_EXECUTORS = ("in_process", "execute_in_process_executor")  # every step in this process


def warm_whisper(context: dg.AssetExecutionContext, paths, job: str, asr: ASRBackend) -> bool:
    """Start loading the ASR model while this run probes and demuxes, if it transcribes next.

    The run executes in this process (in-process executor), so its transcript step then finds
    the model loaded (~0.5 s for faster-whisper: importing it and reading the model). Started
    here, once the run is planned, rather than when the CLI starts: there it competed with
    importing Dagster and planning for the two cores (bench/subtitles_overhead.py). Not when
    the transcript is there already (a re-run reuses it).
    """
    if context.job_def.executor_def.name not in IN_PROCESS_EXECUTORS:
        return False
    run = context.run  # what this run executes: its asset selection, its steps (a re-execution)
    if run.asset_selection and dg.AssetKey("transcript") not in run.asset_selection:  # empty: all
        return False
    steps = run.step_keys_to_execute
    if "transcript" not in (steps if steps is not None else context.job_def.graph.node_names()):
        return False
    done = stage_manifest(paths, stage_dirs.TRANSCRIPT, job)
    if context.run.tags.get(FORCE_TAG) != "true" and done is not None and done.status == "success":
        return False
    asr.preload()
    return True


@dg.asset(
    partitions_def=subtitle_job_partitions, group_name=stage_dirs.DOMAIN, code_version="1",
    kinds={"ffmpeg"}, retry_policy=PROVIDER_RETRY, metadata=stage_dirs.AUDIO.metadata,
)
@one_line_failures
def audio(
    context: dg.AssetExecutionContext, storage: StageStore, media: MediaTools,
    source_video: StageManifest,
):
    """16 kHz mono PCM WAV of the first audio track, on the video's timeline (start offset kept)."""
    paths = storage.paths
    video = stage_input(paths, source_video, "video")
    expected = float(source_video.details.get("audio_duration_s") or 0.0)

    def work(out: StageWriter) -> None:
        wav = out.output("audio.wav", kind="audio", fmt="wav")
        media.extract_audio(video.path, wav)
        got = media.probe(wav).duration
        start = float(source_video.details.get("audio_start_s") or 0.0)
        if expected and got + TRUNCATION_TOLERANCE_S < expected + start:
            raise BadInputError(
                f"{source_video.details.get('original_name')}: only {got:.1f}s of its "
                f"{expected:.1f}s audio could be decoded; the file looks truncated",
                decoded_s=got, expected_s=expected,
            )
        out.details.update(duration_s=round(got, 3), sample_rate=16000, channels=1,
                           start_offset_s=start)

    return run_stage(
        context, paths, stage_dirs.AUDIO, inputs=[video],
        config={"sample_rate": 16000, "channels": 1, "filter": "aresample=async=1:first_pts=0"},
        provider_versions=media.versions(), work=work,
    )


@dg.asset(
    partitions_def=subtitle_job_partitions, group_name=stage_dirs.DOMAIN, code_version="1",
    kinds={"whisper"}, retry_policy=PROVIDER_RETRY, metadata=stage_dirs.TRANSCRIPT.metadata,
    pool=transcript_pool(),  # "gpu" when STAGEFLOW_ASR_DEVICE is not cpu, else None
)
@one_line_failures
def transcript(
    context: dg.AssetExecutionContext, storage: StageStore, asr: ASRBackend, audio: StageManifest
):
    """What was said, with segment and word timings and the detected language (Whisper)."""
    paths = storage.paths
    wav = stage_input(paths, audio, "audio")

    def work(out: StageWriter) -> None:
        with out.timed("asr"):  # the CLI's display shows Whisper's position (a no-op elsewhere)
            result = asr.transcribe(wav.path, on_progress=progress.asr_position)
        out.output("transcript.json", kind="transcript", fmt="json").write_text(
            result.model_dump_json(indent=1), encoding="utf-8"
        )
        duration = max(result.duration, 0.001)
        out.details.update(
            language=result.language, language_probability=result.language_probability,
            segments=len(result.segments), words=sum(len(s.words) for s in result.segments),
            alignment=getattr(result, "alignment", "whisper-word-timestamps"),
            real_time_factor=round(out.timings["asr"] / duration, 3),
        )
        out.preview = "\n".join(
            f"- `{s.start:7.2f}–{s.end:7.2f}` {s.text}" for s in result.segments[:8]
        ) or "_no speech found_"
        if not result.segments:
            out.warnings.append("no speech recognised")

    return run_stage(
        context, paths, stage_dirs.TRANSCRIPT, inputs=[wav], config=asr.parameters(),
        provider_versions=asr.versions(), work=work,
    )


@dg.asset(
    partitions_def=subtitle_job_partitions, group_name=stage_dirs.DOMAIN,
    code_version=f"1.{segmenter.RULES_VERSION}", kinds={"python"}, metadata=stage_dirs.CUES.metadata,
)
@one_line_failures
def cues(
    context: dg.AssetExecutionContext, storage: StageStore, rules: SubtitleRules,
    source_video: StageManifest, transcript: StageManifest,
):
    """Subtitle cues in the spoken language, cut from the word timings by the subtitle rules.

    At most two lines of 42 characters, 5/6 s to 7 s, breaks at punctuation or before
    conjunctions, gaps of 2 frames or at least 12 at the video's frame rate. Every language
    is translated cue by cue from these, so all languages share their timing.
    """
    paths = storage.paths
    source = stage_input(paths, transcript, "transcript")
    heard = Transcript.model_validate_json(source.path.read_text(encoding="utf-8"))
    fps = float(source_video.details.get("fps") or rules.default_fps)
    lang = heard.language

    def work(out: StageWriter) -> None:
        words = [w for segment in heard.segments for w in segment.words]
        built = segmenter.build_cues(words, lang, rules, fps)
        doc = CueDoc(language=lang, fps=fps, cues=built)
        out.output("cues.json", kind="cues", fmt="json", language=lang).write_text(
            doc.model_dump_json(indent=1), encoding="utf-8"
        )
        out.details.update(cues=len(built), language=lang, fps=fps)
        out.preview = "\n".join(f"- `{c.start:7.2f}–{c.end:7.2f}` {c.text}" for c in built[:8]) or "_no cues_"

    return run_stage(
        context, paths, stage_dirs.CUES, inputs=[source],
        config={"fps": fps, **rules.parameters(lang)}, work=work,
    )
