"""Ingesting a Claude Message Batch: which round is due, its answers merged into the ones already
ingested, whether a follow-up batch is worth it, and how the result reads in the UI.

Plain functions over the batch documents of `claude.py`; `claude_batch_results` (batch_assets.py)
calls them around its two provider calls (download, submit the follow-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stageflow_assets.providers.llm import BatchResult, Usage, ids_to_rebatch
from stageflow_assets.vocabulary.assets import cell
from stageflow_assets.vocabulary.claude import (
    BatchDoc,
    BatchItem,
    BatchResultsDoc,
    BatchRound,
    ClaudeLexicon,
    FailedItem,
    IngestedWord,
)


@dataclass(frozen=True)
class DueRound:
    """The batch one ingestion downloads: the submitted one (round 0), or the follow-up in flight,
    with what the earlier rounds already hold."""

    batch_id: str
    number: int
    items: list[BatchItem]
    words: list[IngestedWord] = field(default_factory=list)
    failed_before: list[FailedItem] = field(default_factory=list)
    rounds: list[BatchRound] = field(default_factory=list)


@dataclass(frozen=True)
class Merged:
    """One round's answers merged into the earlier ones."""

    round: DueRound
    counts: dict[str, int]
    words: list[IngestedWord]
    failed: list[FailedItem]
    new_failed: list[FailedItem]
    rebatchable: set[str]
    unexpected: list[str]
    rounds: list[BatchRound]
    round_usage: Usage

    @property
    def usage(self) -> Usage:
        return Usage.total(r.usage for r in self.rounds)

    @property
    def retry(self) -> list[FailedItem]:
        """This round's failures worth a follow-up batch."""
        return [f for f in self.new_failed if f.custom_id in self.rebatchable]


def due_round(batch: BatchDoc, previous: BatchResultsDoc | None) -> DueRound:
    """`previous`: this batch's last ingestion, if any; a follow-up it recorded is what is due."""
    if previous is None or previous.followup_batch_id is None:
        return DueRound(batch.batch_id, 0, batch.items)
    wanted = set(previous.followup_custom_ids)
    return DueRound(
        batch_id=previous.followup_batch_id, number=previous.followup_round or len(previous.rounds),
        items=[BatchItem(custom_id=f.custom_id, headword=f.headword, pos_hint=f.pos_hint, line=0)
               for f in previous.failed if f.custom_id in wanted],
        words=list(previous.words), failed_before=[f for f in previous.failed if f.custom_id not in wanted],
        rounds=list(previous.rounds))


def merge_round(due: DueRound, results: dict[str, BatchResult], counts: dict[str, int],
                lexicon: ClaudeLexicon) -> Merged:
    """Match the downloaded results to the round's items by custom_id; an item with no result line
    failed as `missing`, which is worth a follow-up like an expired one."""
    words, failed = [], []
    for item in due.items:
        result = results.get(item.custom_id)
        if result is not None and result.status == "succeeded":
            words.append(IngestedWord(custom_id=item.custom_id, headword=item.headword, pos_hint=item.pos_hint,
                                      round=due.number, entry=lexicon.entry(item.headword, result.parsed)))
            continue
        failed.append(FailedItem(
            custom_id=item.custom_id, headword=item.headword, pos_hint=item.pos_hint, round=due.number,
            status=result.status if result else "missing",
            error_type=result.error_type if result else None,
            error_message=result.error_message if result else "no result line for this custom_id",
            retryable=result.should_rebatch if result else True))
    round_usage = Usage.total(r.usage for r in results.values() if r.usage is not None)
    this_round = BatchRound(round=due.number, batch_id=due.batch_id, custom_ids=[i.custom_id for i in due.items],
                            succeeded=len(words), failed=len(failed), request_counts=counts, usage=round_usage)
    return Merged(
        round=due, counts=counts, words=due.words + words, failed=due.failed_before + failed, new_failed=failed,
        rebatchable=set(ids_to_rebatch(results)) | {f.custom_id for f in failed if f.status == "missing"},
        unexpected=sorted(set(results) - {i.custom_id for i in due.items}),
        rounds=[*due.rounds, this_round], round_usage=round_usage)


def no_followup_because(merged: Merged, max_rounds: int, batch: BatchDoc, lexicon: ClaudeLexicon) -> str | None:
    """Why no follow-up batch is submitted for `merged.retry`; None: submit one."""
    if not merged.retry:
        return "nothing to re-batch"
    if merged.round.number >= max_rounds:
        return f"follow-up rounds spent ({max_rounds})"
    if batch.lexicon != lexicon.parameters():
        return "the lexicon settings changed since the batch was submitted"
    return None


def results_doc(batch: BatchDoc, merged: Merged, followup_id: str | None) -> BatchResultsDoc:
    return BatchResultsDoc(
        batch_id=batch.batch_id, language=batch.language, native=batch.native, lexicon=batch.lexicon,
        words=merged.words, failed=merged.failed, usage=merged.usage, rounds=merged.rounds,
        followup_batch_id=followup_id,
        followup_custom_ids=[f.custom_id for f in merged.retry] if followup_id else [],
        followup_round=merged.round.number + 1 if followup_id else None)


def describe(batch: BatchDoc, merged: Merged, followup_id: str | None, why_not: str | None,
             max_rounds: int) -> tuple[dict[str, Any], list[str], str]:
    """(details, warnings, preview) of one ingestion."""
    due, words, failed = merged.round, merged.words, merged.failed
    to_messages = [] if followup_id else failed
    retry = merged.retry
    details = dict(
        batch_id=batch.batch_id, round=due.number, round_batch_id=due.batch_id, request_counts=merged.counts,
        requests=len(batch.items), succeeded=len(words),
        succeeded_by_round={str(r.round): r.succeeded for r in merged.rounds},
        not_a_word=[w.headword for w in words if w.entry is None][:200],
        failed=[f.model_dump() for f in failed[:200]],
        retryable=[f.headword for f in retry][:200],
        batches=[{"round": r.round, "batch_id": r.batch_id, "requests": len(r.custom_ids),
                  "succeeded": r.succeeded, "failed": r.failed} for r in merged.rounds],
        max_rebatch_rounds=max_rounds,
        followup_batch_id=followup_id, followup_custom_ids=[f.custom_id for f in retry] if followup_id else [],
        recovery=(f"follow-up batch {followup_id} (round {due.number + 1}) for {len(retry)} item(s); "
                  "claude_batch_sensor requests the next ingestion when it ends") if followup_id else
                 (f"word_analysis asks {len(to_messages)} failed item(s) through Messages ({why_not})"
                  if to_messages else "none needed"),
        messages_fallback=[f.headword for f in to_messages][:200],
        unexpected_custom_ids=merged.unexpected[:20],
        llm_batch_usage=merged.usage.model_dump(), cost_rate="batch (50% of the Messages price)",
        # this round's own usage (llm_batch_usage is every round's so far): what daily_usage counts
        llm_batch_round_usage=merged.round_usage.model_dump(),
    )
    warnings = [f"{len(to_messages)} batch item(s) did not succeed "
                f"({', '.join(sorted({f.status for f in to_messages}))}): word_analysis asks them "
                f"through Messages ({why_not})"] if to_messages else []
    preview = "| headword | result | meaning |\n|---|---|---|\n" + "\n".join(
        [f"| {cell(w.headword, 30)} | succeeded (round {w.round}) | "
         f"{cell(w.entry.senses[0].definition if w.entry else '(not a word)')} |" for w in words[:10]]
        + [f"| {cell(f.headword, 30)} | {f.status} {f.error_type or ''} | "
           f"{'→ follow-up batch' if followup_id and f in retry else '→ Messages'} |" for f in failed[:5]])
    if followup_id:
        preview += f"\n\nFollow-up batch `{followup_id}` in flight: the deck is built when it is ingested."
    return details, warnings, preview

