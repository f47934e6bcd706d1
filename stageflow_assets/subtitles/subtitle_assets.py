"""`subtitles`: SRT, WebVTT and styled ASS per job × language, with QC as asset checks."""

import json

import dagster as dg
import pysubs2

from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import (
    StageInput, StageWriter, one_line_failures, partition_parts, run_stage, stage_input,
)
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.subtitles import qc, stage_dirs

from stageflow_assets.subtitles.fitting import fit_translation
from stageflow_assets.subtitles.linebreak import break_lines
from stageflow_assets.subtitles.models import TranslationDoc
from stageflow_assets.subtitles.partitions import job_language_partitions
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.subtitles.style import SubtitleStyle
from stageflow_assets.subtitles.automation import INBOX_EAGER

# two checks, not one per rule: each check result costs events and lookups in every run
QC_ERRORS_CHECK, QC_WARNINGS_CHECK = "qc_errors", "qc_warnings"
QC_CHECKS = [
    dg.AssetCheckSpec(QC_ERRORS_CHECK, asset="subtitles", blocking=True, partitions_def=job_language_partitions,
                      description="ERROR, blocks the mux: overlapping, non-monotonic or empty cues, more lines "
                                  "than allowed, lines too long, durations outside the limits."),
    dg.AssetCheckSpec(QC_WARNINGS_CHECK, asset="subtitles", partitions_def=job_language_partitions,
                      description="WARN: reading speed, frame gaps, unknown words, repeated n-grams, "
                                  "phantom phrases, glossary."),
]
FORMATS = (("srt", "srt"), ("vtt", "vtt"), ("ass", "ass"))


@dg.asset(
    partitions_def=job_language_partitions, group_name=stage_dirs.DOMAIN, code_version="3",
    kinds={"pysubs2"}, automation_condition=INBOX_EAGER, metadata=stage_dirs.SUBTITLES.metadata,
    check_specs=QC_CHECKS,
)
@one_line_failures
def subtitles(
    context: dg.AssetExecutionContext, storage: StageStore, rules: SubtitleRules,
    style: SubtitleStyle, translation: StageManifest, source_video: StageManifest,
):
    """SRT, WebVTT and styled ASS files for one job × language, lines broken by the rules.

    Every language's text is laid onto the source timing within the hard rules (`fitting.py`):
    a cue whose text does not fit two lines is split, or re-flowed with its neighbours, never
    past the video's end; the metadata's `fitting` counts them. The QC of every rule (overlaps,
    empty cues, line length and count, duration, reading speed, frame gaps, unknown words,
    repeats, phantom phrases, glossary) is written as `qc.json` and reported by the
    `qc_errors` (blocking: the hard rules) and `qc_warnings` asset checks.
    """
    paths = storage.paths
    _, lang = partition_parts(context.partition_key)
    skipped = translation.status == "skipped"
    inputs: list[StageInput] = [] if skipped else [stage_input(paths, translation, "translation")]

    def work(out: StageWriter) -> None:
        if skipped:
            out.skip(translation.details.get("skipped_reason", "translation skipped"))
            return
        doc = TranslationDoc.model_validate_json(inputs[0].path.read_text(encoding="utf-8"))
        width = rules.line_chars(lang)
        fitted = fit_translation(doc.cues, [c.text for c in doc.cues], lang, rules, doc.fps,
                                 video_end=source_video.details.get("duration_s"))
        lined = [(c, break_lines(c.text, lang, width, rules.max_lines)) for c in fitted.cues]
        # glossary misses are named by source cue: report them on its first fitted cue
        first_cue: dict[int, int] = {}
        for cue in fitted.cues:
            for source in cue.sources:
                first_cue.setdefault(source, cue.index)
        missing = {first_cue.get(index, index): terms for index, terms in doc.glossary_missing.items()}
        subs = pysubs2.SSAFile()
        style.apply(subs)
        for cue, lines in lined:
            subs.append(pysubs2.SSAEvent(start=round(cue.start * 1000), end=round(cue.end * 1000),
                                         text=r"\N".join(lines)))
        for fmt, ext in FORMATS:
            subs.save(str(out.output(f"subtitles.{ext}", kind=fmt, fmt=fmt, language=lang)), format_=fmt)
        found = qc.violations(
            [qc.QcCue(c.index, c.start, c.end, lines) for c, lines in lined], lang, rules, doc.fps,
            unknown_words=doc.unknown_words, missing_terms=missing,
        )
        out.output("qc.json", kind="qc", fmt="json", language=lang).write_text(
            json.dumps(found, indent=1, ensure_ascii=False), encoding="utf-8"
        )
        out.details.update(cues=len(subs), source_cues=len(doc.cues), fitting=fitted.summary(),
                           unfit_source_cues=fitted.unfit[:50], violations=qc.counts(found))
        first = "\n\n".join(subs.to_string("srt").split("\n\n")[:5])
        out.preview = f"```\n{first}\n```"

    output = run_stage(
        context, paths, stage_dirs.SUBTITLES, inputs=inputs,
        config={**rules.parameters(lang), "style": style.parameters(), "formats": [f for f, _ in FORMATS],
                "skipped": skipped},
        provider_versions={"pysubs2": pysubs2.VERSION}, work=work,
    )
    yield output
    yield from qc_results(paths, output.value)


def qc_results(paths, manifest: StageManifest):
    """The two QC checks, each with every rule's count and first offending cues."""
    found = {} if manifest.status == "skipped" else json.loads(
        paths.absolute(manifest.output("qc").path).read_text(encoding="utf-8")
    )
    for name, rules, severity in (
        (QC_ERRORS_CHECK, qc.ERROR_RULES, dg.AssetCheckSeverity.ERROR),
        (QC_WARNINGS_CHECK, qc.WARN_RULES, dg.AssetCheckSeverity.WARN),
    ):
        by_rule = {rule: found.get(rule, []) for rule in rules}
        yield dg.AssetCheckResult(
            check_name=name, passed=not any(by_rule.values()), severity=severity,
            metadata={
                "violations": dg.MetadataValue.json({rule: len(items) for rule, items in by_rule.items()}),
                "offending": dg.MetadataValue.json({rule: items[:20] for rule, items in by_rule.items() if items}),
                "skipped": manifest.status == "skipped",
            },
        )
