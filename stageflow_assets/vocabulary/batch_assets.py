"""The Claude Message Batches path for long word lists: prepare → submit → (sensor) → ingest.

    word_list → claude_batch_requests → claude_batch        (claude_batch_job)
                  ... claude_batch_sensor polls the batch; when it ends it requests ...
    claude_batch_results → word_analysis → audio/images → anki_deck   (claude_batch_ingest_job)

Each step is its own stage with its own manifest, so a submitted batch is never submitted twice
(`claude_batch` is reused while its requests are unchanged) and its results are downloaded once.
Only the words that the per-word analysis cache does not already hold are asked, and only when
they are more than the lexicon's `batch_threshold`; otherwise the steps record themselves as
skipped and `word_analysis` asks through Messages. Items that expired or errored retryably go
into a follow-up batch (same requests, same custom_ids) submitted at ingest, up to the lexicon's
`max_rebatch_rounds`; the sensor polls it and requests another ingestion, which merges its answers.
What still fails after that (and non-retryable errors) is left to `word_analysis`, which asks it
one by one through Messages.
"""


import json
from datetime import datetime, timezone

import dagster as dg

from stageflow_assets.core.errors import ProviderError, StageError
from stageflow_assets.core.manifest import MANIFEST_NAME, StageManifest
from stageflow_assets.core.paths import write_text_atomic
from stageflow_assets.core.stage import StageWriter, one_line_failures, run_stage, stage_input
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.lexicon import Lexicon
from stageflow_assets.providers.llm import Usage, ids_to_rebatch
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary import prompts, stage_dirs
from stageflow_assets.vocabulary.analysis import CACHE_DIR, Analyser
from stageflow_assets.vocabulary.assets import cell
from stageflow_assets.vocabulary.claude import (
    RESULTS_FILE,
    BatchDoc,
    BatchItem,
    BatchRequestsDoc,
    BatchResultsDoc,
    ClaudeLexicon,
    BatchRound,
    FailedItem,
    ingested_results,
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
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version=CODE_VERSION, kinds={"claude"},
    metadata=stage_dirs.CLAUDE_BATCH_REQUESTS.metadata,
)
@one_line_failures
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
        cache = paths.stage_dir(stage_dirs.DOMAIN, job.job, stage_dirs.WORD_ANALYSIS.dir_name) / CACHE_DIR
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

    return run_stage(context, paths, stage_dirs.CLAUDE_BATCH_REQUESTS, inputs=[source], config=config, work=work,
                     provider_versions=lexicon.versions())


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version=CODE_VERSION, kinds={"claude"},
    metadata=stage_dirs.CLAUDE_BATCH.metadata,
)
@one_line_failures
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
        batch = BatchDoc(**doc.model_dump(), batch_id=batch_id, submitted_at=datetime.now(timezone.utc))
        out.output("batch.json", kind="batch", fmt="json").write_text(batch.model_dump_json(indent=1), encoding="utf-8")
        out.details.update(batch_id=batch_id, requests=len(requests), model=doc.lexicon.get("model"),
                           breaker=lexicon.claude.breaker_state())
        out.preview = f"Claude batch `{batch_id}`: {len(requests)} requests, submitted {batch.submitted_at:%Y-%m-%d %H:%M} UTC"

    # an open circuit means nothing was submitted: waiting for the cool-down cannot double-submit
    return run_stage(context, paths, stage_dirs.CLAUDE_BATCH, inputs=inputs, config=config, work=work,
                     provider_versions=lexicon.versions())


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version=CODE_VERSION, kinds={"claude"},
    metadata=stage_dirs.CLAUDE_BATCH_RESULTS.metadata,
    # no output while a follow-up batch is in flight: the rest of the ingestion run is skipped
    output_required=False,
)
@one_line_failures
def claude_batch_results(
    context: dg.AssetExecutionContext, storage: StageStore, lexicon: Lexicon, claude_batch: StageManifest,
):
    """The ended batch's answers, matched to words by `custom_id` and validated (`results.json`),
    with token usage and cost at the batch rate (50%).

    Items that expired or errored retryably (`ids_to_rebatch`) go into a follow-up batch with the
    same requests and custom_ids, up to the lexicon's `max_rebatch_rounds`: the stage then records
    the follow-up (`followup_batch_id`) and yields no output, so the rest of this run is skipped;
    `claude_batch_sensor` requests the next ingestion when the follow-up ends, which merges its
    answers into these. Items still failing when the rounds are spent, and non-retryable errors,
    are listed in `failed`; `word_analysis` asks each of them through Messages.
    """
    paths = storage.paths
    active = claude_batch.status == "success"
    inputs = [stage_input(paths, claude_batch, "batch")] if active else []
    claude = isinstance(lexicon, ClaudeLexicon)
    max_rounds = lexicon.max_rebatch_rounds if claude else None
    batch = BatchDoc.model_validate_json(inputs[0].path.read_text(encoding="utf-8")) if active else None
    # what this ingestion covers: the submitted batch, then each follow-up once recorded. A
    # follow-up in flight is part of the config, so the next ingestion is not a reuse of this one.
    previous = None
    if batch is not None:
        found = ingested_results(paths, str(context.partition_key))
        if found is not None and found[0].batch_id == batch.batch_id:
            previous = found[0]
    chain = previous.chain() if previous is not None else ([batch.batch_id] if batch is not None else [])
    config = {"lexicon": lexicon.parameters(), "max_rebatch_rounds": max_rounds, "batches": chain}
    pending: list[str] = []

    def work(out: StageWriter) -> None:
        if _skip_unless_claude(lexicon, out):
            return
        if batch is None:
            out.skip(f"no batch: {claude_batch.details.get('skipped_reason', 'none submitted')}")
            return
        following = previous is not None and previous.followup_batch_id is not None
        if following:
            assert previous is not None and previous.followup_batch_id is not None
            batch_id, round_no = previous.followup_batch_id, previous.followup_round or len(previous.rounds)
            wanted = set(previous.followup_custom_ids)
            asked_items = [f for f in previous.failed if f.custom_id in wanted]
            items = [BatchItem(custom_id=f.custom_id, headword=f.headword, pos_hint=f.pos_hint, line=0)
                     for f in asked_items]
            words = list(previous.words)
            failed_before = [f for f in previous.failed if f.custom_id not in wanted]
            rounds = list(previous.rounds)
        else:
            batch_id, round_no = batch.batch_id, 0
            items, words, failed_before, rounds = batch.items, [], [], []
        status, counts = lexicon.claude.batch_status(batch_id)
        if status != "ended":
            raise ProviderError(f"Claude batch {batch_id} is {status}, not ended: claude_batch_sensor "
                                "requests this ingestion when it ends", batch_id=batch_id, counts=counts)
        with out.timed("download"):
            results = lexicon.claude.batch_results(batch_id, prompts.ClaudeWord)
        new_words, new_failed = [], []
        for item in items:
            result = results.get(item.custom_id)
            if result is not None and result.status == "succeeded":
                new_words.append(IngestedWord(custom_id=item.custom_id, headword=item.headword,
                                              pos_hint=item.pos_hint, round=round_no,
                                              entry=lexicon.entry(item.headword, result.parsed)))
                continue
            new_failed.append(FailedItem(
                custom_id=item.custom_id, headword=item.headword, pos_hint=item.pos_hint, round=round_no,
                status=result.status if result else "missing",
                error_type=result.error_type if result else None,
                error_message=result.error_message if result else "no result line for this custom_id",
                retryable=result.should_rebatch if result else True))
        unexpected = sorted(set(results) - {i.custom_id for i in items})
        rebatchable = set(ids_to_rebatch(results)) | {f.custom_id for f in new_failed if f.status == "missing"}
        round_usage = Usage.total(r.usage for r in results.values() if r.usage is not None)
        rounds.append(BatchRound(round=round_no, batch_id=batch_id, custom_ids=[i.custom_id for i in items],
                                 succeeded=len(new_words), failed=len(new_failed), request_counts=counts,
                                 usage=round_usage))
        words += new_words
        failed = failed_before + new_failed
        usage = Usage.total(r.usage for r in rounds)

        # a follow-up batch of exactly the retryable failures, while rounds remain
        retry = [f for f in new_failed if f.custom_id in rebatchable]
        followup_id, why_not = None, None
        if not retry:
            why_not = "nothing to re-batch"
        elif round_no >= (max_rounds or 0):
            why_not = f"follow-up rounds spent ({max_rounds})"
        elif batch.lexicon != lexicon.parameters():
            why_not = "the lexicon settings changed since the batch was submitted"
        else:
            requests = [lexicon.request(f.headword, batch.language, f.pos_hint, batch.native) for f in retry]
            assert [r.custom_id for r in requests] == [f.custom_id for f in retry]
            with out.timed("submit_followup"):
                followup_id = lexicon.claude.submit_batch(requests)
            out.log(f"submitted follow-up Claude batch {followup_id} (round {round_no + 1}): "
                    f"{len(requests)} request(s) that failed in {batch_id}")
            pending.append(followup_id)
        doc = BatchResultsDoc(batch_id=batch.batch_id, language=batch.language, native=batch.native,
                              lexicon=batch.lexicon, words=words, failed=failed, usage=usage, rounds=rounds,
                              followup_batch_id=followup_id,
                              followup_custom_ids=[f.custom_id for f in retry] if followup_id else [],
                              followup_round=round_no + 1 if followup_id else None)
        out.output(RESULTS_FILE, kind="batch_results", fmt="json").write_text(doc.model_dump_json(indent=1),
                                                                               encoding="utf-8")
        to_messages = [] if followup_id else failed
        out.details.update(
            batch_id=batch.batch_id, round=round_no, round_batch_id=batch_id, request_counts=counts,
            requests=len(batch.items), succeeded=len(words),
            succeeded_by_round={str(r.round): r.succeeded for r in rounds},
            not_a_word=[w.headword for w in words if w.entry is None][:200],
            failed=[f.model_dump() for f in failed[:200]],
            retryable=[f.headword for f in new_failed if f.custom_id in rebatchable][:200],
            batches=[{"round": r.round, "batch_id": r.batch_id, "requests": len(r.custom_ids),
                      "succeeded": r.succeeded, "failed": r.failed} for r in rounds],
            max_rebatch_rounds=max_rounds,
            followup_batch_id=followup_id, followup_custom_ids=[f.custom_id for f in retry] if followup_id else [],
            recovery=(f"follow-up batch {followup_id} (round {round_no + 1}) for {len(retry)} item(s); "
                      "claude_batch_sensor requests the next ingestion when it ends") if followup_id else
                     (f"word_analysis asks {len(to_messages)} failed item(s) through Messages ({why_not})"
                      if to_messages else "none needed"),
            messages_fallback=[f.headword for f in to_messages][:200],
            unexpected_custom_ids=unexpected[:20],
            llm_batch_usage=usage.model_dump(), cost_rate="batch (50% of the Messages price)",
            # this round's own usage (llm_batch_usage is every round's so far): what daily_usage counts
            llm_batch_round_usage=round_usage.model_dump(),
            breaker=lexicon.claude.breaker_state(),
        )
        if to_messages:
            out.warnings.append(f"{len(to_messages)} batch item(s) did not succeed "
                                f"({', '.join(sorted({f.status for f in to_messages}))}): word_analysis asks them "
                                f"through Messages ({why_not})")
        out.preview = "| headword | result | meaning |\n|---|---|---|\n" + "\n".join(
            [f"| {cell(w.headword, 30)} | succeeded (round {w.round}) | "
             f"{cell(w.entry.senses[0].definition if w.entry else '(not a word)')} |" for w in words[:10]]
            + [f"| {cell(f.headword, 30)} | {f.status} {f.error_type or ''} | "
               f"{'→ follow-up batch' if followup_id and f in retry else '→ Messages'} |" for f in failed[:5]])
        if followup_id:
            out.preview += f"\n\nFollow-up batch `{followup_id}` in flight: the deck is built when it is ingested."

    result = run_stage(context, paths, stage_dirs.CLAUDE_BATCH_RESULTS, inputs=inputs, config=config, work=work,
                       provider_versions=lexicon.versions())
    waiting = pending[0] if pending else (
        result.value.details.get("followup_batch_id") if result.value.status == "success" else None)
    if waiting:
        # recorded (manifest, results.json, an observation) but not an output: analysis and the deck wait
        directory = paths.stage_dir(stage_dirs.DOMAIN, str(context.partition_key), stage_dirs.CLAUDE_BATCH_RESULTS.dir_name)
        write_text_atomic(directory / MANIFEST_NAME, result.value.model_dump_json(indent=2))
        context.log.info(f"follow-up Claude batch {waiting} in flight: the rest of this run is skipped; "
                         "claude_batch_sensor requests the next ingestion when it ends")
        context.log_event(dg.AssetObservation(
            asset_key=context.asset_key, partition=str(context.partition_key),
            metadata={**result.metadata, "followup_batch_id": waiting}))
        return
    yield result
