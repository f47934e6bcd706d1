"""`subtitled_video`: the original video with every language's subtitles (MKV or MP4)."""

import shutil
from typing import Literal

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.io_manager import FAN_IN
from stageflow_assets.core.languages import iso639_2, language_name
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import (
    PROVIDER_RETRY, StageWriter, one_line_failures, partition_parts, run_stage, stage_input,
)
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.media import MediaTools, SubtitleTrack
from stageflow_assets.subtitles import stage_dirs

from stageflow_assets.subtitles.partitions import job_language_partitions, subtitle_job_partitions
from stageflow_assets.subtitles.automation import MUX_CONDITION


class MuxConfig(dg.Config):
    languages: list[str] = []
    """Languages to mux, in track order; empty means every language with subtitles."""
    container: Literal["mkv", "mp4"] = "mkv"
    burn_in: str | None = None
    """A language whose subtitles are also burnt into the picture (re-encodes the video)."""


@dg.asset(
    partitions_def=subtitle_job_partitions, group_name=stage_dirs.DOMAIN, code_version="3",
    kinds={"ffmpeg"}, retry_policy=PROVIDER_RETRY, automation_condition=MUX_CONDITION,
    metadata=stage_dirs.SUBTITLED_VIDEO.metadata,
    ins={"subtitles": dg.AssetIn(metadata={FAN_IN: True})},
)
@one_line_failures
def subtitled_video(
    context: dg.AssetExecutionContext, config: MuxConfig, storage: StageStore, media: MediaTools,
    source_video: StageManifest, subtitles: dict[str, StageManifest],
):
    """The original video with one soft subtitle track per language, tagged ISO 639-2.

    MKV (SRT tracks) by default, MP4 (mov_text tracks) on request; one language can also be
    burnt into the picture. Streams the container holds are copied, the others re-encoded to
    H.264/AAC; the manifest's `streams` records each decision.
    """
    paths = storage.paths
    by_lang = {partition_parts(job_language_partitions.get_partition_key_from_str(k))[1]: m
               for k, m in subtitles.items()}
    wanted = config.languages or sorted(by_lang)
    missing = [lang for lang in wanted if lang not in by_lang]
    present = [lang for lang in wanted if lang in by_lang and by_lang[lang].status == "success"]
    skipped = sorted(set(wanted) - set(present) - set(missing))
    video = stage_input(paths, source_video, "video")
    srts = {lang: stage_input(paths, by_lang[lang], "srt") for lang in present}
    burn = stage_input(paths, by_lang[config.burn_in], "ass") if config.burn_in in present else None

    def work(out: StageWriter) -> None:
        if missing:
            raise BadInputError(
                f"no subtitles yet for {', '.join(missing)} of {source_video.partition}: "
                "materialize those languages first", missing=missing,
            )
        if config.burn_in and burn is None:
            raise BadInputError(f"cannot burn in {config.burn_in}: it has no subtitles in this job",
                                burn_in=config.burn_in, languages=present)
        if not srts:
            out.skip("no language has subtitles")
            return
        tracks = [SubtitleTrack(path=srts[l].path, language=iso639_2(l), title=language_name(l)) for l in present]
        plans = media.plan_mux(video.path, config.container, burn_in=burn is not None)
        if burn is not None and not any(p.kind == "video" for p in plans):
            raise BadInputError(f"cannot burn in {config.burn_in}: {source_video.details.get('original_name')} "
                                "has no video stream; leave out --burn-in", burn_in=config.burn_in)
        # what each source stream becomes (a failed mux carries the same list in its error details)
        out.details.update(streams=[p.record() for p in plans],
                           transcoded=[f"0:{p.index}" for p in plans if p.action == "transcode"])
        target = out.output(f"subtitled.{config.container}", kind="video", fmt=config.container)
        burn_copy = None
        if burn is not None:
            burn_copy = out.directory / f".burn-{context.run.run_id[:8]}.ass"
            shutil.copyfile(burn.path, burn_copy)
        try:
            media.mux(video.path, tracks, target, config.container, burn_copy, plans,
                      source_name=source_video.details.get("original_name"))
        finally:
            if burn_copy is not None:
                burn_copy.unlink(missing_ok=True)
        out.details.update(tracks=[t.language for t in tracks], skipped_languages=skipped,
                           container=config.container, burnt_in=config.burn_in)

    return run_stage(
        context, paths, stage_dirs.SUBTITLED_VIDEO, inputs=[video, *srts.values(), *([burn] if burn else [])],
        config={"container": config.container, "languages": present, "burn_in": config.burn_in,
                "subtitle_codec": "mov_text" if config.container == "mp4" else "srt"},
        provider_versions=media.versions(), work=work,
    )
