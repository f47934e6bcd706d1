"""The Claude Message Batches path for long word lists: prepare → submit → (sensor) → ingest.

    word_list → claude_batch_requests → claude_batch        (claude_batch_job)
                  ... claude_batch_sensor polls the batch; when it ends it requests ...
    claude_batch_results → word_analysis → audio/images → anki_deck   (claude_batch_ingest_job)

Each step is its own stage with its own manifest, so a submitted batch is never submitted twice
(`claude_batch` is reused while its requests are unchanged) and its results are downloaded once.
Only the words that the per-word analysis cache does not already hold are asked, and only when
they are more than the lexicon's `batch_threshold`; otherwise the steps record themselves as
skipped and `word_analysis` asks through Messages. Items that did not succeed (errored, expired,
canceled, invalid output) are left to `word_analysis`, which asks them one by one through
Messages: see the README for why that, and not a follow-up batch.
"""


import json
from datetime import datetime, timezone

import dagster as dg

from stageflow_assets.core.errors import ProviderError, StageError
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import StageWriter, run_stage
from stageflow_assets.core.storage import StageStore
from stageflow_assets.providers.lexicon import Lexicon
from stageflow_assets.providers.llm import Usage, ids_to_rebatch
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary import prompts, stages
from stageflow_assets.vocabulary.analysis import CACHE_DIR, Analyser
from stageflow_assets.vocabulary.assets import GROUP, cell, stage_input
from stageflow_assets.vocabulary.claude import (
    RESULTS_FILE,
    BatchDoc,
    BatchItem,
    BatchRequestsDoc,
    BatchResultsDoc,
    ClaudeLexicon,
    FailedItem,
    IngestedWord,
)
from stageflow_assets.vocabulary.models import WordListDoc
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import load_word_list_job

CODE_VERSION = f"1-prompt{prompts.PROMPT_VERSION}"
NOT_CLAUDE = "the lexicon is not Claude (STAGEFLOW_LEXICON=claude): no Message Batches"


def _skip_unless_claude(lexicon: Lexicon, out: StageWriter) -> bool:
    if not isinstance(lexicon, ClaudeLexicon):
        out.skip(NOT_CLAUDE)
        return True
    return False


@dg.asset(
    partitions_def=word_list_partitions, group_name=GROUP, code_version=CODE_VERSION, kinds={"claude"},
    metadata=stages.CLAUDE_BATCH_REQUESTS.metadata,
)
def claude_batch_requests(
    context: dg.AssetExecutionContext, storage: StageStore, lexicon: Lexicon, tts: EspeakTTS,
    translator: ApertiumTranslator, word_list: StageManifest,
):
    """The Message Batch requests for the words the analysis does not hold yet, one per headword
    with a `custom_id` from the note identity (`requests.json` index, `requests.jsonl` wire bodies).

    Skipped (word_analysis then asks through Messages) when the lexicon is not Claude or when the
    words to ask are not more than the lexicon's `batch_threshold`.
    """
    paths = storage.paths
    job = load_word_list_job(paths, str(context.partition_key))
    source = stage_input(paths, word_list, "words")
    claude = isinstance(lexicon, ClaudeLexicon)
    config = {"language": job.language, "native": job.native, "lexicon": lexicon.parameters(),
              "batch_threshold": lexicon.batch_threshold if claude else None}

    def work(out: StageWriter) -> None:
        if _skip_unless_claude(lexicon, out):
            return
        words = WordListDoc.model_validate_json(source.path.read_text(encoding="utf-8")).words
        # the same per-word cache keys word_analysis uses: ask only what it would compute
        cache = paths.stage_dir(stages.DOMAIN, job.job, stages.WORD_ANALYSIS.dir_name) / CACHE_DIR
        todo = Analyser(lexicon, tts, translator, job.language, job.native, cache).missing(words)
        requests, items = {}, []
        for word in todo:
            request = lexicon.request(word.headword, job.language, word.pos_hint, job.native)
            if request.custom_id not in requests:
                requests[request.custom_id] = request
                items.append(BatchItem(custom_id=request.custom_id, headword=word.headword,
                                       pos_hint=word.pos_hint, line=word.line))
        out.details.update(words=len(words), cached_words=len(words) - len(todo), to_ask=len(items),
                           batch_threshold=lexicon.batch_threshold)
        if len(items) <= lexicon.batch_threshold:
            out.skip(f"{len(items)} word(s) to ask, not above the batch threshold ({lexicon.batch_threshold}): "
                     "word_analysis asks them through Messages")
            return
        doc = BatchRequestsDoc(language=job.language, native=job.native, lexicon=lexicon.parameters(), items=items)
        out.output("requests.json", kind="batch_requests", fmt="json").write_text(
            doc.model_dump_json(indent=1), encoding="utf-8")
        bodies = lexicon.claude.prepare_batch(list(requests.values()))  # checks the custom_ids
        out.output("requests.jsonl", kind="batch_bodies", fmt="jsonl").write_text(
            "".join(json.dumps(b, ensure_ascii=False, sort_keys=True) + "\n" for b in bodies), encoding="utf-8")
        out.preview = "| custom_id | headword | POS hint |\n|---|---|---|\n" + "\n".join(
            f"| `{i.custom_id}` | {cell(i.headword, 30)} | {i.pos_hint or ''} |" for i in items[:12])

    return run_stage(context, paths, stages.CLAUDE_BATCH_REQUESTS, inputs=[source], config=config, work=work,
                     provider_versions=lexicon.versions())


@dg.asset(
    partitions_def=word_list_partitions, group_name=GROUP, code_version=CODE_VERSION, kinds={"claude"},
    metadata=stages.CLAUDE_BATCH.metadata,
)
def claude_batch(
    context: dg.AssetExecutionContext, storage: StageStore, lexicon: Lexicon,
    claude_batch_requests: StageManifest,
):
    """The submitted Message Batch (`batch.json`: batch id and items). Submitted once per request
    set: while the requests are unchanged this stage is reused, never re-submitted. No automatic
    retry: a failure after submission must not submit a second batch.

    `claude_batch_sensor` polls it and requests `claude_batch_ingest_job` when it ends.
    """
    paths = storage.paths
    active = claude_batch_requests.status == "success"
    inputs = [stage_input(paths, claude_batch_requests, "batch_requests")] if active else []
    config = {"lexicon": lexicon.parameters()}

    def work(out: StageWriter) -> None:
        if _skip_unless_claude(lexicon, out):
            return
        if not active:
            out.skip(f"no batch: {claude_batch_requests.details.get('skipped_reason', 'no requests')}")
            return
        doc = BatchRequestsDoc.model_validate_json(inputs[0].path.read_text(encoding="utf-8"))
        if doc.lexicon != lexicon.parameters():
            raise StageError("the batch requests were prepared with other lexicon settings: "
                             "re-materialize claude_batch_requests", prepared=doc.lexicon)
        requests = [lexicon.request(i.headword, doc.language, i.pos_hint, doc.native) for i in doc.items]
        assert [r.custom_id for r in requests] == [i.custom_id for i in doc.items]
        with out.timed("submit"):
            batch_id = lexicon.claude.submit_batch(requests)
        out.log(f"submitted Claude batch {batch_id}: {len(requests)} requests")
        batch = BatchDoc(batch_id=batch_id, submitted_at=datetime.now(timezone.utc), language=doc.language,
                         native=doc.native, lexicon=doc.lexicon, items=doc.items)
        out.output("batch.json", kind="batch", fmt="json").write_text(batch.model_dump_json(indent=1), encoding="utf-8")
        out.details.update(batch_id=batch_id, requests=len(requests), model=doc.lexicon.get("model"))
        out.preview = f"Claude batch `{batch_id}`: {len(requests)} requests, submitted {batch.submitted_at:%Y-%m-%d %H:%M} UTC"

    return run_stage(context, paths, stages.CLAUDE_BATCH, inputs=inputs, config=config, work=work,
                     provider_versions=lexicon.versions())


@dg.asset(
    partitions_def=word_list_partitions, group_name=GROUP, code_version=CODE_VERSION, kinds={"claude"},
    metadata=stages.CLAUDE_BATCH_RESULTS.metadata,
)
def claude_batch_results(
    context: dg.AssetExecutionContext, storage: StageStore, lexicon: Lexicon, claude_batch: StageManifest,
):
    """The ended batch's answers, matched to words by `custom_id` and validated (`results.json`),
    with token usage and cost at the batch rate (50%).

    Items that did not succeed (errored, expired, canceled, invalid output) are listed; the
    `word_analysis` that follows asks each of them through Messages.
    """
    paths = storage.paths
    active = claude_batch.status == "success"
    inputs = [stage_input(paths, claude_batch, "batch")] if active else []
    config = {"lexicon": lexicon.parameters()}

    def work(out: StageWriter) -> None:
        if _skip_unless_claude(lexicon, out):
            return
        if not active:
            out.skip(f"no batch: {claude_batch.details.get('skipped_reason', 'none submitted')}")
            return
        batch = BatchDoc.model_validate_json(inputs[0].path.read_text(encoding="utf-8"))
        status, counts = lexicon.claude.batch_status(batch.batch_id)
        if status != "ended":
            raise ProviderError(f"Claude batch {batch.batch_id} is {status}, not ended: claude_batch_sensor "
                                "requests this ingestion when it ends", batch_id=batch.batch_id, counts=counts)
        with out.timed("download"):
            results = lexicon.claude.batch_results(batch.batch_id, prompts.ClaudeWord)
        words, failed = [], []
        for item in batch.items:
            result = results.get(item.custom_id)
            if result is not None and result.status == "succeeded":
                words.append(IngestedWord(custom_id=item.custom_id, headword=item.headword, pos_hint=item.pos_hint,
                                          entry=lexicon.entry(item.headword, result.parsed)))
                continue
            failed.append(FailedItem(
                custom_id=item.custom_id, headword=item.headword, status=result.status if result else "missing",
                error_type=result.error_type if result else None,
                error_message=result.error_message if result else "no result line for this custom_id",
                retryable=result.should_rebatch if result else True))
        unexpected = sorted(set(results) - {i.custom_id for i in batch.items})
        rebatchable = set(ids_to_rebatch(results))
        usage = Usage.total(r.usage for r in results.values() if r.usage is not None)
        doc = BatchResultsDoc(batch_id=batch.batch_id, language=batch.language, native=batch.native,
                              lexicon=batch.lexicon, words=words, failed=failed, usage=usage)
        out.output(RESULTS_FILE, kind="batch_results", fmt="json").write_text(doc.model_dump_json(indent=1),
                                                                               encoding="utf-8")
        out.details.update(
            batch_id=batch.batch_id, request_counts=counts, requests=len(batch.items), succeeded=len(words),
            not_a_word=[w.headword for w in words if w.entry is None][:200],
            failed=[f.model_dump() for f in failed[:200]],
            retryable=[f.headword for f in failed if f.custom_id in rebatchable][:200],
            recovery="word_analysis asks every failed item through Messages", unexpected_custom_ids=unexpected[:20],
            llm_batch_usage=usage.model_dump(), cost_rate="batch (50% of the Messages price)",
        )
        if failed:
            out.warnings.append(f"{len(failed)} batch item(s) did not succeed "
                                f"({', '.join(sorted({f.status for f in failed}))}): word_analysis asks them "
                                "through Messages")
        out.preview = "| headword | result | meaning |\n|---|---|---|\n" + "\n".join(
            [f"| {cell(w.headword, 30)} | succeeded | "
             f"{cell(w.entry.senses[0].definition if w.entry else '(not a word)')} |" for w in words[:10]]
            + [f"| {cell(f.headword, 30)} | {f.status} {f.error_type or ''} | → Messages |" for f in failed[:5]])

    return run_stage(context, paths, stages.CLAUDE_BATCH_RESULTS, inputs=inputs, config=config, work=work,
                     provider_versions=lexicon.versions())
