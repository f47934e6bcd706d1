"""The vocabulary pipeline's first stages: the word list and what each word means and sounds like.

Every asset is partitioned by `word_lists` (one partition per deck); see media_assets.py and
deck_assets.py for the rest of the chain.
"""


import shutil
from pathlib import Path

import dagster as dg

from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import (
    PROVIDER_RETRY, StageInput, StageWriter, one_line_failures, run_stage, stage_input,
)
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.lexicon import Lexicon
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.analysis import CACHE_DIR, Analyser
from stageflow_assets.vocabulary.claude import ClaudeLexicon, custom_id_for, usable_results
from stageflow_assets.vocabulary.lexicon_answers import LexiconAnswers
from stageflow_assets.vocabulary.models import AnalysisDoc, WordListDoc
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import load_word_list_job
from stageflow_assets.vocabulary.optional_inputs import MANIFEST_IF_ANY
from stageflow_assets.vocabulary.wordlist import MAX_HEADWORD_CHARS, parse_word_list

PARSE_RULES_VERSION = "1"


def cell(text: str, width: int = 60) -> str:
    """Text safe inside a markdown table cell."""
    text = " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;")
    return text if len(text) <= width else text[: width - 1] + "…"


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version=PARSE_RULES_VERSION,
    kinds={"python"}, metadata=stage_dirs.WORD_LIST.metadata,
)
@one_line_failures
def word_list(context: dg.AssetExecutionContext, storage: StageStore):
    """The deck's word list, normalised: one row per distinct headword (case-insensitive, first
    spelling kept), with optional part-of-speech hint, tags and note.

    Partitioned by deck (`word_lists`). Plain text (one headword a line, `#` comments), CSV with
    a header or JSON. Bad lines are left out and listed with their line numbers.
    """
    paths = storage.paths
    job = load_word_list_job(paths, str(context.partition_key))
    source = Path(job.source_path)

    def work(out: StageWriter) -> None:
        doc = parse_word_list(source)
        shutil.copyfile(source, out.output(f"source{source.suffix.lower() or '.txt'}", kind="source", fmt=doc.format))
        out.output("words.json", kind="words", fmt="json").write_text(doc.model_dump_json(indent=1), encoding="utf-8")
        out.details.update(
            original_name=job.original_name, format=doc.format, words=len(doc.words),
            bad_lines=[b.model_dump() for b in doc.bad_lines[:200]], bad_line_count=len(doc.bad_lines),
            duplicates=[d.model_dump() for d in doc.duplicates[:200]], duplicate_count=len(doc.duplicates),
            blank_or_comment_lines=doc.blank_or_comment_lines,
        )
        out.warnings += [f"line {b.line}: {b.reason}" for b in doc.bad_lines[:20]]
        rows = [f"| {w.line} | {cell(w.headword)} | {w.pos_hint or ''} | {cell(' '.join(w.tags))} |" for w in doc.words[:15]]
        out.preview = "| line | headword | POS hint | tags |\n|---:|---|---|---|\n" + "\n".join(rows)

    return run_stage(
        context, paths, stage_dirs.WORD_LIST, inputs=[StageInput(source, kind="word_list")],
        config={"max_headword_chars": MAX_HEADWORD_CHARS, "dedupe": "casefold, first spelling kept"},
        work=work,
    )


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version="3",
    kinds={"wordnet", "espeakng", "apertium"}, retry_policy=PROVIDER_RETRY,
    metadata=stage_dirs.WORD_ANALYSIS.metadata,
    # a real input on both ways of building: loaded as None where the batch path never ran
    # (vocabulary_deck_job does not build it), its last manifest otherwise
    ins={"claude_batch_results": dg.AssetIn(input_manager_key=MANIFEST_IF_ANY)},
)
@one_line_failures
def word_analysis(
    context: dg.AssetExecutionContext, storage: StageStore, lexicon: Lexicon, tts: EspeakTTS,
    translator: ApertiumTranslator, word_list: StageManifest, claude_batch_results: StageManifest | None,
):
    """Each headword's meanings, part of speech, example sentences, IPA and native-language
    translation: one row per word of the list.

    Lexicon: WordNet (English), or Claude (`STAGEFLOW_LEXICON=claude`: any language, and the
    translation too); IPA: espeak-ng; translation: Apertium where it has the pair.
    A headword written with a marker (`to borrow`, `an apple`) is looked up, transcribed and
    spoken as the word after it when that is a known word (`lookup_form`); the card keeps what
    was written.
    Words a backend does not know are kept and listed in `unknown_words`, never a failure.
    Each word's result is cached by its content, so an edited list redoes only edited words.
    With Claude, answers ingested from a Message Batch and its follow-up batches
    (`claude_batch_results`, an input only the batch path materializes) are used first, then the
    answers kept for this deck (`lexicon_answers/`); words neither holds are asked through
    Messages (`word_paths` says which way each word went).
    """
    paths = storage.paths
    job = load_word_list_job(paths, str(context.partition_key))
    source = stage_input(paths, word_list, "words")
    inputs = [source]
    config = {"language": job.language, "native": job.native, "lexicon": lexicon.parameters(),
              "tts": tts.parameters(job.language)}
    batch = None
    if isinstance(lexicon, ClaudeLexicon) and (found := usable_results(paths, claude_batch_results, job, lexicon)):
        batch, ingested = found
        inputs.append(ingested)
    kept = LexiconAnswers.of_deck(paths, job.job, lexicon)

    def work(out: StageWriter) -> None:
        words = WordListDoc.model_validate_json(source.path.read_text(encoding="utf-8")).words
        answers = {w.custom_id: w.entry for w in batch.words} if batch is not None else {}
        analyser = Analyser(lexicon, tts, translator, job.language, job.native, out.directory / CACHE_DIR,
                            answers=answers, kept=kept)
        with out.timed("analyse"):
            rows = analyser.analyse(words)
        analyser.prune()
        if kept is not None:
            kept.prune({kept.key(w.headword, job.language, w.pos_hint, job.native) for w in words})
        doc = AnalysisDoc(language=job.language, native=job.native, lexicon=str(lexicon.parameters()["backend"]),
                          translation_backend=analyser.translation_backend, words=rows)
        out.output("analysis.json", kind="analysis", fmt="json").write_text(doc.model_dump_json(indent=1), encoding="utf-8")
        unknown = [w.headword for w in rows if not w.senses]
        bad_ipa = [w.headword for w in rows if not w.ipa_valid]
        out.details.update(
            words=len(rows), known_words=len(rows) - len(unknown), unknown_words=unknown[:200],
            ipa_missing_or_invalid=bad_ipa[:200], translated=sum(1 for w in rows if w.translation),
            computed_words=analyser.computed, reused_words=analyser.reused,
            looked_up_as=dict(list({w.headword: w.lookup_form for w in rows if w.lookup_form}.items())[:200]),
            issues={w.headword: w.issues for w in rows if w.issues},
        )
        if isinstance(lexicon, ClaudeLexicon):
            # Messages calls of this run (full rate); the batch's own usage (batch rate) is
            # claude_batch_results' and is repeated here for the deck's total
            out.details.update(llm_usage=lexicon.usage().model_dump(), answered_by_batch=analyser.answered,
                               asked_by_messages=analyser.computed - analyser.answered - len(analyser.recalled_ids),
                               breaker=lexicon.claude.breaker_state())
            rounds = {w.custom_id: w.round for w in batch.words} if batch is not None else {}
            computed = {custom_id_for(job.language, w.headword, w.pos_hint) for w in analyser.computed_words}
            paths_taken = {}
            for w in words:
                cid = custom_id_for(job.language, w.headword, w.pos_hint)
                if cid in analyser.answered_ids:
                    paths_taken[w.headword] = "batch" if rounds.get(cid, 0) == 0 else f"follow-up batch {rounds[cid]}"
                elif cid in computed and cid not in analyser.recalled_ids:
                    paths_taken[w.headword] = "messages"
                else:
                    paths_taken[w.headword] = "cached"
            # which way each word was answered in this run (cached: answered by an earlier run,
            # its row or its kept lexicon answer)
            out.details.update(word_paths=dict(list(paths_taken.items())[:200]), answered_by_followup_batch=sum(
                1 for v in paths_taken.values() if v.startswith("follow-up")))
            if batch is not None:
                out.details.update(batch_id=batch.batch_id, llm_batch_usage=batch.usage.model_dump(),
                                   batches=[r.batch_id for r in batch.rounds] or [batch.batch_id])
                if batch.followup_batch_id:
                    out.warnings.append(f"follow-up Claude batch {batch.followup_batch_id} not ingested yet: its "
                                        "items were asked through Messages")
        if job.native and job.native != job.language and not analyser.translation_backend:
            out.warnings.append(f"no Apertium pair {job.language}→{job.native}: cards carry no translation")
        if unknown:
            out.warnings.append(f"{len(unknown)} word(s) not in the lexicon: {', '.join(unknown[:10])}")
        rows_md = [f"| {cell(w.headword, 30)} | {w.part_of_speech} | {cell(w.ipa, 30)} | "
                   f"{cell(w.senses[0].definition if w.senses else '—')} | {cell(w.translation, 30)} |" for w in rows[:12]]
        out.preview = "| headword | POS | IPA | meaning | translation |\n|---|---|---|---|---|\n" + "\n".join(rows_md)

    return run_stage(
        context, paths, stage_dirs.WORD_ANALYSIS, inputs=inputs, config=config,
        provider_versions={**lexicon.versions(), **tts.versions(), **translator.versions()}, work=work,
    )
