"""Claude as the vocabulary lexicon: Messages for a word at a time, Message Batches for long lists.

`ClaudeLexicon` is a `Lexicon` (the seam `word_analysis` asks for), so the per-word cache,
IPA, audio and deck stages are the same as with WordNet. It also translates into the learner's
language (`translates`), replacing Apertium for that column.

The batch path (batch_assets.py) sends exactly the request `lookup` would send, one batch item
per headword, with a `custom_id` derived from the note identity (`custom_id_for`); its results
are written by `claude_batch_results`, and `word_analysis` (its input) uses them as answers
(`usable_results`) before asking Messages for anything.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import pycountry
from pydantic import BaseModel, Field, PrivateAttr

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.stage import StageInput, stage_input
from stageflow_assets.providers.lexicon import LexEntry, Lexicon, Sense
from stageflow_assets.providers.llm import BatchRequest, ClaudeResource, Usage
from stageflow_assets.vocabulary import prompts
from stageflow_assets.vocabulary.cards import GUID_NAMESPACE
from stageflow_assets.vocabulary.models import VocabJob

DEFAULT_BATCH_THRESHOLD = 50
DEFAULT_MAX_REBATCH_ROUNDS = 2
RESULTS_FILE = "results.json"


def custom_id_for(language: str, headword: str, pos_hint: str | None) -> str:
    """A batch `custom_id` from the note identity (language + headword, case-insensitive + POS
    hint; the same identity as the note GUID): deterministic, `[A-Za-z0-9_-]`, 34 characters."""
    identity = "\x1f".join([GUID_NAMESPACE, language.lower(), headword.casefold(), pos_hint or ""])
    return "w_" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


class ClaudeLexicon(Lexicon):
    """Meanings, part of speech, examples, synonyms and translation from Claude (structured
    JSON validated by `prompts.ClaudeWord`; invalid replies are re-asked by the provider).

    Lists whose words-to-ask exceed `batch_threshold` go through Message Batches (half price,
    up to 24 h) when built by `claude_batch_job` (the CLI does this on its own)."""

    claude: ClaudeResource
    max_senses: int = 3
    max_examples: int = 2
    batch_threshold: int = Field(default=DEFAULT_BATCH_THRESHOLD,
                                 description="more words to ask than this: Message Batches")
    max_rebatch_rounds: int = Field(
        default=DEFAULT_MAX_REBATCH_ROUNDS, ge=0,
        description="follow-up batches for expired / retryably errored items before asking them through Messages")
    _usage: Usage = PrivateAttr(default_factory=Usage)

    def languages(self) -> frozenset[str]:
        return frozenset(lang.alpha_2 for lang in pycountry.languages if hasattr(lang, "alpha_2"))

    def translates(self, language: str, native: str | None) -> bool:
        return bool(native) and native != language

    def parameters(self) -> dict[str, object]:
        # what decides an answer (no secrets, no base_url): the per-word cache keys on this
        claude = self.claude.parameters()
        return {"backend": "claude", "model": claude["model"], "max_tokens": claude["max_tokens"],
                "prompt_version": prompts.PROMPT_VERSION, "llm_prompt_version": claude["prompt_version"],
                "max_senses": self.max_senses, "max_examples": self.max_examples}

    def versions(self) -> dict[str, str]:
        return self.claude.versions()

    def request(self, headword: str, language: str, pos_hint: str | None, native: str | None) -> BatchRequest:
        system, prompt = prompts.word_request(headword, language, pos_hint, native if self.translates(
            language, native) else None, self.max_senses, self.max_examples)
        return BatchRequest(custom_id_for(language, headword, pos_hint), system, prompt, prompts.ClaudeWord)

    def lookup(self, headword: str, language: str, pos_hint: str | None = None,
               native: str | None = None) -> LexEntry | None:
        request = self.request(headword, language, pos_hint, native)
        word, usage = self.claude.complete_json(request.system, request.prompt, prompts.ClaudeWord)
        self._usage = self._usage + usage
        return self.entry(headword, word)

    def entry(self, headword: str, word: prompts.ClaudeWord) -> LexEntry | None:
        """A validated answer as a `LexEntry`; None when Claude says it is not a word."""
        if not word.known or not word.senses:
            return None
        senses = [Sense(part_of_speech=word.part_of_speech, definition=s.definition.strip(),
                        examples=[e.strip() for e in s.examples if e.strip()][: self.max_examples],
                        synonyms=[w.strip() for w in s.synonyms if w.strip()][:4])
                  for s in word.senses[: self.max_senses]]
        others = [p for p in dict.fromkeys(word.other_parts_of_speech) if p != word.part_of_speech]
        return LexEntry(headword=headword, lemma=word.lemma.strip() or headword, part_of_speech=word.part_of_speech,
                        senses=senses, other_parts_of_speech=others, backend="claude",
                        translation=" ".join(word.translation.split()))

    def usage(self) -> Usage:
        """Tokens and cost of the Messages calls this resource made (this run)."""
        return self._usage


# ---------------------------------------------------------------------------- batch documents
class BatchItem(BaseModel):
    custom_id: str
    headword: str
    pos_hint: str | None = None
    line: int


class BatchRequestsDoc(BaseModel):
    """`requests.json` (claude_batch_requests): which words one batch asks, and with what settings.
    `requests.jsonl` beside it holds the exact wire bodies."""

    language: str
    native: str | None = None
    lexicon: dict[str, Any]
    items: list[BatchItem]


class BatchDoc(BatchRequestsDoc):
    """`batch.json` (claude_batch): the submitted batch, with the requests it carries."""

    batch_id: str
    submitted_at: datetime


class IngestedWord(BaseModel):
    custom_id: str
    headword: str
    pos_hint: str | None = None
    entry: LexEntry | None = Field(description="None: Claude says it is not a word of the language")
    round: int = Field(default=0, description="0: the first batch; n: the n-th follow-up batch")


class FailedItem(BaseModel):
    custom_id: str
    headword: str
    pos_hint: str | None = None
    status: str
    error_type: str | None = None
    error_message: str | None = None
    retryable: bool
    round: int = 0


class BatchRound(BaseModel):
    """One batch of the chain: the first one (round 0) or a follow-up of the items that failed retryably."""

    round: int
    batch_id: str
    custom_ids: list[str]
    succeeded: int = 0
    failed: int = 0
    request_counts: dict[str, int] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)


class BatchResultsDoc(BaseModel):
    """`results.json` (claude_batch_results): the answers of one submitted batch and of its
    follow-up batches, merged by custom_id, and the items that did not succeed.

    `followup_batch_id` set: a follow-up batch with the retryable failures is in flight; the next
    ingestion (claude_batch_sensor requests it when it ends) merges its answers. Unset: final, and
    word_analysis asks what is still in `failed` through Messages."""

    batch_id: str = Field(description="the batch claude_batch submitted (round 0)")
    language: str
    native: str | None = None
    lexicon: dict[str, Any]
    words: list[IngestedWord]
    failed: list[FailedItem] = Field(default_factory=list)
    usage: Usage = Field(description="all rounds, at the batch rate")
    rounds: list[BatchRound] = Field(default_factory=list)
    followup_batch_id: str | None = None
    followup_round: int | None = None
    followup_custom_ids: list[str] = Field(default_factory=list)

    def chain(self) -> list[str]:
        """The batch ids this document ingested, plus the follow-up in flight."""
        done = [r.batch_id for r in self.rounds] or [self.batch_id]
        return done + ([self.followup_batch_id] if self.followup_batch_id else [])


def usable_results(paths: StagePaths, manifest: StageManifest | None, job: VocabJob,
                   lexicon: ClaudeLexicon) -> tuple[BatchResultsDoc, StageInput] | None:
    """The answers `claude_batch_results` ingested (its manifest), as an input of the deck's
    analysis; None when there are none, or when they were asked with other settings (model,
    prompt, native language) and so are not the answers this deck would get."""
    if manifest is None or manifest.status != "success":
        return None
    ingested = stage_input(paths, manifest, "batch_results")
    try:
        doc = BatchResultsDoc.model_validate_json(ingested.path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{ingested.path}: the ingested batch results are gone; re-materialize "
                            "claude_batch_results", input=str(ingested.path)) from None
    if (doc.language, doc.native, doc.lexicon) != (job.language, job.native, lexicon.parameters()):
        return None
    return doc, ingested
