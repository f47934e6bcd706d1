"""`translation`: each job's cues in one target language (`job × lang`)."""

from pathlib import Path

import dagster as dg

from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import StageInput, StageWriter, partition_parts, run_stage
from stageflow_assets.core.storage import StageStore
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.subtitles import glossary, stages
from stageflow_assets.subtitles.assets import GROUP, PROVIDER_RETRY, stage_input
from stageflow_assets.subtitles.models import CueDoc, TranslatedCue, TranslationDoc
from stageflow_assets.subtitles.partitions import job_language_partitions
from stageflow_assets.subtitles.registry import global_glossary, load_job

EAGER = dg.AutomationCondition.eager()
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
    partitions_def=job_language_partitions, group_name=GROUP, code_version="3",
    kinds={"apertium"}, retry_policy=PROVIDER_RETRY, automation_condition=EAGER,
    metadata=stages.TRANSLATION.metadata,
    check_specs=[dg.AssetCheckSpec(CUE_PARITY_CHECK, asset="translation", blocking=True,
                                   partitions_def=job_language_partitions,
                                   description="One translated cue per source cue (ERROR).")],
)
def translation(
    context: dg.AssetExecutionContext, storage: StageStore, translator: ApertiumTranslator,
    cues: StageManifest,
):
    """The spoken-language cues in one target language: one translated line per source cue.

    Partitioned by job × language. Same-language targets copy the cues (captions); glossary
    terms are forced; a pair no backend serves is recorded as skipped with the reason.
    """
    paths = storage.paths
    job, lang = partition_parts(context.partition_key)
    source = stage_input(paths, cues, "cues")
    doc = CueDoc.model_validate_json(source.path.read_text(encoding="utf-8"))
    glossaries = _glossary_inputs(paths, job)
    entries = [e for g in glossaries for e in glossary.load_glossary(g.path)]
    terms = glossary.for_language(entries, lang)
    same = lang == doc.language
    config = {"source_language": doc.language, "target_language": lang, "glossary_terms": len(terms)}
    config.update({"backend": "none (same language)"} if same else translator.parameters(doc.language, lang))

    def work(out: StageWriter) -> None:
        if not same and config.get("mode") is None:
            out.skip(f"no translation backend serves {doc.language}→{lang} (Apertium pairs: `apertium -l`)")
            return
        sources = [c.text for c in doc.cues]
        if same:
            texts, unknown = sources, []
        else:
            protected, placeholders = glossary.protect(sources, terms)
            texts, unknown = translator.translate(protected, doc.language, lang)
            texts = glossary.restore(texts, placeholders)
            unknown = [w for w in unknown if w not in placeholders]
        result = TranslationDoc(
            source_language=doc.language, target_language=lang, backend=config["backend"], fps=doc.fps,
            cues=[TranslatedCue(index=c.index, start=c.start, end=c.end, text=t, source=c.text)
                  for c, t in zip(doc.cues, texts)],
            unknown_words=unknown,
            glossary_missing={} if same else glossary.missing_terms(sources, texts, terms),
        )
        out.output("translation.json", kind="translation", fmt="json", language=lang).write_text(
            result.model_dump_json(indent=1), encoding="utf-8"
        )
        out.details.update(cues=len(result.cues), source_cues=len(doc.cues), unknown_words=len(unknown),
                           glossary_missing=len(result.glossary_missing))
        out.preview = "\n".join(f"- {c.source} → **{c.text}**" for c in result.cues[:6]) or "_no cues_"

    output = run_stage(
        context, paths, stages.TRANSLATION, inputs=[source, *glossaries], config=config,
        provider_versions={} if same else translator.versions(), work=work,
    )
    yield output
    details = output.value.details
    matched = output.value.status == "skipped" or details.get("cues") == details.get("source_cues")
    yield dg.AssetCheckResult(
        check_name=CUE_PARITY_CHECK, passed=matched, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"cues": details.get("cues", 0), "source_cues": details.get("source_cues", len(doc.cues))},
    )
