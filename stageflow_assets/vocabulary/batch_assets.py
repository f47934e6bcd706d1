"""The Claude Message Batches path for long word lists: prepare → submit → (sensor) → ingest.

    word_list → claude_batch_requests → claude_batch        (claude_batch_job)
                  ... claude_batch_sensor polls the batch; when it ends it requests ...
    claude_batch_results → word_analysis → audio/images → anki_deck   (claude_batch_ingest_job)

Each step is its own stage with its own manifest, so a submitted batch is never submitted twice
(`claude_batch` is reused while its requests are unchanged) and its results are downloaded once.
Only the words the Claude lexicon has not answered for this deck yet are asked
(`lexicon_answers.py`), and only when they are more than the lexicon's `batch_threshold`;
otherwise the steps record themselves as skipped and `word_analysis` asks through Messages. Items that expired or errored retryably go
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
from stageflow_assets.core.paths import StagePaths, write_text_atomic
from stageflow_assets.core.stage import StageWriter, one_line_failures, run_stage, stage_input
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.lexicon import Lexicon
from stageflow_assets.vocabulary import batch_ingest as ingest
from stageflow_assets.vocabulary import prompts, stage_dirs
from stageflow_assets.vocabulary.assets import cell
from stageflow_assets.vocabulary.batch_polling import ingested_results
from stageflow_assets.vocabulary.claude import RESULTS_FILE, BatchDoc, BatchItem, BatchRequestsDoc, ClaudeLexicon
from stageflow_assets.vocabulary.lexicon_answers import LexiconAnswers
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
    context: dg.AssetExecutionContext, storage: StageStore, lexicon: Lexicon, word_list: StageManifest,
):
    """The Message Batch requests for the words the Claude lexicon has not answered for this deck
    yet (`lexicon_answers/`), one per headword with a `custom_id` from the note identity
    (`requests.json` index, `requests.jsonl` wire bodies).

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
        kept = LexiconAnswers.of_deck(paths, job.job, lexicon)
        requests, items, answered = {}, [], 0
        for word in words:
            request = lexicon.request(word.headword, job.language, word.pos_hint, job.native)
            if kept is not None and kept.recall(kept.key_of(request)) is not None:
                answered += 1  # asked before with these settings, by Messages or a batch
                continue
            if request.custom_id not in requests:
                requests[request.custom_id] = request
                items.append(BatchItem(custom_id=request.custom_id, headword=word.headword,
                                       pos_hint=word.pos_hint, line=word.line))
        out.details.update(words=len(words), cached_words=answered, to_ask=len(items),
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
    job = str(context.partition_key)
    active = claude_batch.status == "success"
    inputs = [stage_input(paths, claude_batch, "batch")] if active else []
    max_rounds = lexicon.max_rebatch_rounds if isinstance(lexicon, ClaudeLexicon) else None
    batch = BatchDoc.model_validate_json(inputs[0].path.read_text(encoding="utf-8")) if active else None
    # this stage's own last ingestion of the same batch: a follow-up it recorded is what is due now
    found = ingested_results(paths, job) if batch is not None else None
    previous = found[0] if found is not None and found[0].batch_id == batch.batch_id else None
    # what this ingestion covers: the submitted batch, then each follow-up once recorded. A
    # follow-up in flight is part of the config, so the next ingestion is not a reuse of this one.
    chain = previous.chain() if previous is not None else ([batch.batch_id] if batch is not None else [])
    config = {"lexicon": lexicon.parameters(), "max_rebatch_rounds": max_rounds, "batches": chain}
    followups: list[str] = []

    def work(out: StageWriter) -> None:
        if _skip_unless_claude(lexicon, out):
            return
        if batch is None:
            out.skip(f"no batch: {claude_batch.details.get('skipped_reason', 'none submitted')}")
            return
        due = ingest.due_round(batch, previous)
        status, counts = lexicon.claude.batch_status(due.batch_id)
        if status != "ended":
            raise ProviderError(f"Claude batch {due.batch_id} is {status}, not ended: claude_batch_sensor "
                                "requests this ingestion when it ends", batch_id=due.batch_id, counts=counts)
        with out.timed("download"):
            results = lexicon.claude.batch_results(due.batch_id, prompts.ClaudeWord)
        merged = ingest.merge_round(due, results, counts, lexicon)
        why_not = ingest.no_followup_because(merged, max_rounds or 0, batch, lexicon)
        if why_not is None:
            retry = merged.retry
            requests = [lexicon.request(f.headword, batch.language, f.pos_hint, batch.native) for f in retry]
            assert [r.custom_id for r in requests] == [f.custom_id for f in retry]
            with out.timed("submit_followup"):
                followups.append(lexicon.claude.submit_batch(requests))
            out.log(f"submitted follow-up Claude batch {followups[0]} (round {due.number + 1}): "
                    f"{len(requests)} request(s) that failed in {due.batch_id}")
        followup_id = followups[0] if followups else None
        out.output(RESULTS_FILE, kind="batch_results", fmt="json").write_text(
            ingest.results_doc(batch, merged, followup_id).model_dump_json(indent=1), encoding="utf-8")
        details, warnings, out.preview = ingest.describe(batch, merged, followup_id, why_not, max_rounds or 0)
        out.details.update(details, breaker=lexicon.claude.breaker_state())
        out.warnings += warnings

    result = run_stage(context, paths, stage_dirs.CLAUDE_BATCH_RESULTS, inputs=inputs, config=config, work=work,
                       provider_versions=lexicon.versions())
    pending = followups[0] if followups else (
        result.value.details.get("followup_batch_id") if result.value.status == "success" else None)
    if pending:
        _record_pending(context, paths, result, pending)
        return
    yield result


def _record_pending(context: dg.AssetExecutionContext, paths: StagePaths, result: dg.Output[StageManifest],
                    followup_id: str) -> None:
    """A round that submitted a follow-up batch is recorded, but not as an output: the IO manager
    only stores an output Dagster was given, and an output would run the analysis and the deck in
    this run, asking the follow-up's words at full price. So the manifest (which the sensor, the CLI
    and the next ingestion read) is written here, and the round is an observation in the UI."""
    directory = paths.dir_of(stage_dirs.CLAUDE_BATCH_RESULTS, str(context.partition_key))
    write_text_atomic(directory / MANIFEST_NAME, result.value.model_dump_json(indent=2))
    context.log.info(f"follow-up Claude batch {followup_id} in flight: the rest of this run is skipped; "
                     "claude_batch_sensor requests the next ingestion when it ends")
    context.log_event(dg.AssetObservation(
        asset_key=context.asset_key, partition=str(context.partition_key),
        metadata={**result.metadata, "followup_batch_id": followup_id}))
