"""Per-language stages (`job × lang`) and the mux that gathers a job's languages."""


from pathlib import Path

import dagster as dg
import pysubs2

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.io_manager import FAN_IN
from stageflow_assets.core.languages import iso639_2, language_name
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import StageInput, StageWriter, partition_parts, run_stage
from stageflow_assets.core.storage import StageStore
from stageflow_assets.providers.asr import Transcript
from stageflow_assets.providers.media import MediaTools, SubtitleTrack
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.subtitles import stages
from stageflow_assets.subtitles.assets import GROUP, PROVIDER_RETRY, stage_input
from stageflow_assets.subtitles.cues import CUE_RULES_VERSION, cues_from_transcript, wrap
from stageflow_assets.subtitles.models import TranslatedCue, TranslationDoc
from stageflow_assets.subtitles.partitions import job_language_partitions, subtitle_job_partitions

EAGER = dg.AutomationCondition.eager()


@dg.asset(
    partitions_def=job_language_partitions, group_name=GROUP, code_version=f"1.{CUE_RULES_VERSION}",
    kinds={"apertium"}, retry_policy=PROVIDER_RETRY, automation_condition=EAGER,
    metadata=stages.TRANSLATION.metadata,
)
def translation(
    context: dg.AssetExecutionContext, storage: StageStore, translator: ApertiumTranslator,
    transcript: StageManifest,
):
    """The transcript's cues in one target language: one translated line per source cue.

    Partitioned by job × language. Same-language targets copy the cues (captions);
    a pair no backend serves is recorded as skipped with the reason.
    """
    paths = storage.paths
    _, lang = partition_parts(context.partition_key)
    source = stage_input(paths, transcript, "transcript")
    heard = Transcript.model_validate_json(source.path.read_text(encoding="utf-8"))
    same = lang == heard.language
    config = {"source_language": heard.language, "target_language": lang}
    config.update({"backend": "none (same language)"} if same else translator.parameters(heard.language, lang))

    def work(out: StageWriter) -> None:
        cues = cues_from_transcript(heard)
        if not same and config.get("mode") is None:
            out.skip(f"no translation backend serves {heard.language}→{lang} (Apertium pairs installed: see `apertium -l`)")
            return
        texts, unknown = ([c.text for c in cues], []) if same else translator.translate(
            [c.text for c in cues], heard.language, lang
        )
        doc = TranslationDoc(
            source_language=heard.language, target_language=lang, backend=config["backend"],
            cues=[
                TranslatedCue(index=c.index, start=c.start, end=c.end, text=t, source=c.text)
                for c, t in zip(cues, texts)
            ],
            unknown_words=unknown,
        )
        out.output("translation.json", kind="translation", fmt="json", language=lang).write_text(
            doc.model_dump_json(indent=1), encoding="utf-8"
        )
        out.details.update(cues=len(doc.cues), unknown_words=len(unknown))
        out.preview = "\n".join(f"- {c.source} → **{c.text}**" for c in doc.cues[:6]) or "_no cues_"

    return run_stage(
        context, paths, stages.TRANSLATION, inputs=[source], config=config,
        provider_versions={} if same else translator.versions(), work=work,
    )


@dg.asset(
    partitions_def=job_language_partitions, group_name=GROUP, code_version="1",
    kinds={"pysubs2"}, automation_condition=EAGER, metadata=stages.SUBTITLES.metadata,
)
def subtitles(context: dg.AssetExecutionContext, storage: StageStore, translation: StageManifest):
    """SRT and WebVTT subtitle files for one job × language, lines wrapped at 42 characters."""
    paths = storage.paths
    _, lang = partition_parts(context.partition_key)
    if translation.status == "skipped":
        inputs: list[StageInput] = []
    else:
        inputs = [stage_input(paths, translation, "translation")]

    def work(out: StageWriter) -> None:
        if not inputs:
            out.skip(translation.details.get("skipped_reason", "translation skipped"))
            return
        doc = TranslationDoc.model_validate_json(inputs[0].path.read_text(encoding="utf-8"))
        subs = pysubs2.SSAFile()
        for cue in doc.cues:
            subs.append(pysubs2.SSAEvent(
                start=round(cue.start * 1000), end=round(cue.end * 1000),
                text=r"\N".join(wrap(cue.text)),
            ))
        for fmt, ext in (("srt", "srt"), ("vtt", "vtt")):
            subs.save(str(out.output(f"subtitles.{ext}", kind=fmt, fmt=fmt, language=lang)), format_=fmt)
        out.details.update(cues=len(subs))
        first_cues = "\n\n".join(subs.to_string("srt").split("\n\n")[:5])
        out.preview = f"```\n{first_cues}\n```"

    return run_stage(
        context, paths, stages.SUBTITLES, inputs=inputs,
        config={"line_width": 42, "max_lines": 2, "formats": ["srt", "vtt"],
                "skipped": translation.status == "skipped"},
        provider_versions={"pysubs2": pysubs2.VERSION}, work=work,
    )


class MuxConfig(dg.Config):
    languages: list[str] = []
    """Languages to mux, in track order; empty means every language with subtitles."""


@dg.asset(
    partitions_def=subtitle_job_partitions, group_name=GROUP, code_version="1",
    kinds={"ffmpeg", "mkv"}, retry_policy=PROVIDER_RETRY, automation_condition=EAGER,
    metadata=stages.SUBTITLED_VIDEO.metadata,
    ins={"subtitles": dg.AssetIn(metadata={FAN_IN: True})},
)
def subtitled_video(
    context: dg.AssetExecutionContext, config: MuxConfig, storage: StageStore, media: MediaTools,
    source_video: StageManifest, subtitles: dict[str, StageManifest],
):
    """The original video with one soft subtitle track per language (MKV, ISO 639-2 tags)."""
    paths = storage.paths
    by_lang = {partition_parts(_key(k))[1]: m for k, m in subtitles.items()}
    wanted = config.languages or sorted(by_lang)
    missing = [lang for lang in wanted if lang not in by_lang]
    present = [lang for lang in wanted if lang in by_lang and by_lang[lang].status == "success"]
    skipped = sorted(set(wanted) - set(present) - set(missing))
    video = stage_input(paths, source_video, "video")
    srts = {lang: stage_input(paths, by_lang[lang], "srt") for lang in present}

    def work(out: StageWriter) -> None:
        if missing:
            raise BadInputError(
                f"no subtitles yet for {', '.join(missing)} of {source_video.partition}: "
                "materialize those languages first", missing=missing,
            )
        if not srts:
            out.skip("no language has subtitles")
            return
        tracks = [SubtitleTrack(path=srts[l].path, language=iso639_2(l), title=language_name(l)) for l in present]
        media.mux(video.path, tracks, out.output("subtitled.mkv", kind="video", fmt="matroska"))
        out.details.update(tracks=[t.language for t in tracks], skipped_languages=skipped)

    return run_stage(
        context, paths, stages.SUBTITLED_VIDEO, inputs=[video, *srts.values()],
        config={"container": "mkv", "languages": present, "subtitle_codec": "srt"},
        provider_versions=media.versions(), work=work,
    )


def _key(raw: str):
    return job_language_partitions.get_partition_key_from_str(raw)
