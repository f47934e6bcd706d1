"""`translation`: each job's cues in one target language (`job × lang`)."""

from pathlib import Path

import dagster as dg

from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import (
    PROVIDER_RETRY, StageInput, StageWriter, one_line_failures, partition_parts, run_stage, stage_input,
)
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.asr import ASRBackend
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.subtitles import glossary, segmenter, stage_dirs, translators
from stageflow_assets.subtitles.automation import INBOX_EAGER

from stageflow_assets.subtitles.models import CueDoc, TranslatedCue, TranslationDoc
from stageflow_assets.subtitles.partitions import job_language_partitions
from stageflow_assets.subtitles.registry import global_glossary, load_job
from stageflow_assets.subtitles.rules import SubtitleRules

CUE_PARITY_CHECK = "cue_count_matches_source"


def _glossary_inputs(paths, job: str) -> list[StageInput]:
    """The global glossary if there is one, then the job's own (which must exist)."""
    inputs = []
    if global_glossary(paths).is_file():
        inputs.append(StageInput(global_glossary(paths), kind="glossary"))
    job_glossary = load_job(paths, job).glossary_path
    if job_glossary:
        inputs.append(StageInput(Path(job_glossary), kind="glossary"))
    return inputs


@dg.asset(
    partitions_def=job_language_partitions, group_name=stage_dirs.DOMAIN, code_version="5",
    kinds={"apertium", "claude"}, retry_policy=PROVIDER_RETRY, automation_condition=INBOX_EAGER,
    metadata=stage_dirs.TRANSLATION.metadata,
    check_specs=[dg.AssetCheckSpec(CUE_PARITY_CHECK, asset="translation", blocking=True,
                                   partitions_def=job_language_partitions,
                                   description="One translated cue per source cue (ERROR).")],
)
@one_line_failures
def translation(
    context: dg.AssetExecutionContext, storage: StageStore, translation_settings: translators.TranslationSettings,
    translator: ApertiumTranslator, claude: ClaudeResource, asr: ASRBackend, rules: SubtitleRules,
    cues: StageManifest, audio: StageManifest,
):
    """The spoken-language cues in one target language: one translated line per source cue.

    Partitioned by job × language. Same-language targets copy the cues (captions); Apertium
    (offline) or Claude translate cue by cue with glossary terms forced; Whisper's translate
    task serves English from other languages; a pair nothing serves is recorded as skipped.
    """
    paths = storage.paths
    job, lang = partition_parts(context.partition_key)
    source = stage_input(paths, cues, "cues")
    doc = CueDoc.model_validate_json(source.path.read_text(encoding="utf-8"))
    glossaries = _glossary_inputs(paths, job)
    terms = glossary.for_language([e for g in glossaries for e in glossary.load_glossary(g.path)], lang)
    plan = translators.plan(doc.language, lang, translation_settings, translator, claude)
    wav = stage_input(paths, audio, "audio") if plan.backend == "whisper-translate" else None
    inputs = [source, *glossaries, *([wav] if wav else [])]
    config = {"source_language": doc.language, "target_language": lang, "backend": plan.backend,
              **plan.detail, "glossary_terms": len(terms)}
    if plan.backend == "whisper-translate":
        config["asr"] = asr.parameters()

    def work(out: StageWriter) -> None:
        if plan.backend == "skip":
            out.skip(plan.reason)
            return
        result = translators.translate(
            plan, doc.cues, doc.language, lang, terms, apertium=translator, claude=claude, asr=asr,
            audio=wav.path if wav else None, build_cues=lambda words: segmenter.build_cues(words, lang, rules, doc.fps),
        )
        cue_list = result.cues or doc.cues
        sources = [c.text for c in doc.cues] if result.cues is None else ["" for _ in cue_list]
        translated = TranslationDoc(
            source_language=doc.language, target_language=lang, backend=plan.backend, fps=doc.fps,
            cues=[TranslatedCue(index=c.index, start=c.start, end=c.end, text=t, source=s)
                  for c, t, s in zip(cue_list, result.texts, sources)],
            unknown_words=result.unknown_words,
            glossary_missing=glossary.missing_terms(sources, result.texts, terms) if result.cues is None else {},
        )
        out.output("translation.json", kind="translation", fmt="json", language=lang).write_text(
            translated.model_dump_json(indent=1), encoding="utf-8"
        )
        out.details.update(cues=len(translated.cues), source_cues=len(doc.cues),
                           own_timing=result.cues is not None, unknown_words=len(result.unknown_words),
                           glossary_missing=len(translated.glossary_missing))
        if result.usage:
            out.details["llm_usage"] = result.usage
        out.preview = "\n".join(f"- {c.source} → **{c.text}**" for c in translated.cues[:6]) or "_no cues_"

    versions = {"none": {}, "skip": {}, "apertium": translator.versions(), "claude": claude.versions(),
                "whisper-translate": asr.versions()}[plan.backend]
    output = run_stage(context, paths, stage_dirs.TRANSLATION, inputs=inputs, config=config,
                       provider_versions=versions, work=work)
    yield output
    yield parity_result(output.value)


def parity_result(manifest: StageManifest) -> dg.AssetCheckResult:
    """Cue parity; Whisper's translate task times its own cues, so parity does not apply there."""
    details = manifest.details
    applies = manifest.status != "skipped" and not details.get("own_timing")
    matched = not applies or details.get("cues") == details.get("source_cues")
    return dg.AssetCheckResult(
        check_name=CUE_PARITY_CHECK, passed=matched, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"cues": details.get("cues", 0), "source_cues": details.get("source_cues", 0),
                  "applies": applies},
    )
