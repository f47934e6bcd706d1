"""The Claude lexicon's answers for one deck, kept by the exact question asked.

An answer costs money, and through a Message Batch up to a day, so it is kept where whichever
step asks the lexicon next finds it: `ROOT/vocabulary/<deck>/lexicon_answers/`, the lexicon's
folder for that deck, not any stage's (`stageflow forget` removes it with the deck).
`word_analysis` keeps every answer it uses (Messages or batch) and answers from here before
asking Claude; `claude_batch_requests` leaves the words answered here out of a batch. The key
is everything that decides an answer (the lexicon's parameters and the request's exact text), so
other settings ask again. WordNet's answers cost nothing and are not kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from stageflow_assets.core.hashing import sha256_json
from stageflow_assets.core.paths import StagePaths, write_text_atomic
from stageflow_assets.providers.lexicon import LexEntry, Lexicon
from stageflow_assets.providers.llm import BatchRequest
from stageflow_assets.vocabulary.claude import ClaudeLexicon
from stageflow_assets.vocabulary.stage_dirs import DOMAIN

ANSWERS_DIR = "lexicon_answers"


class KeptAnswer(BaseModel):
    entry: LexEntry | None = None  # None: Claude said it is not a word of the language


@dataclass
class LexiconAnswers:
    lexicon: ClaudeLexicon
    directory: Path
    used: set[str] = field(default_factory=set)  # keys recalled or kept by this holder

    @classmethod
    def of_deck(cls, paths: StagePaths, job: str, lexicon: Lexicon) -> LexiconAnswers | None:
        """The deck's kept answers; None when the lexicon is not Claude."""
        if not isinstance(lexicon, ClaudeLexicon):
            return None
        return cls(lexicon, paths.job_dir(DOMAIN, job) / ANSWERS_DIR)

    def key_of(self, request: BatchRequest) -> str:
        return sha256_json({"lexicon": self.lexicon.parameters(), "system": request.system,
                            "prompt": request.prompt})[:24]

    def key(self, headword: str, language: str, pos_hint: str | None, native: str | None) -> str:
        return self.key_of(self.lexicon.request(headword, language, pos_hint, native))

    def recall(self, key: str) -> KeptAnswer | None:
        try:
            kept = KeptAnswer.model_validate_json((self.directory / f"{key}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValidationError, ValueError):
            return None
        self.used.add(key)
        return kept

    def keep(self, key: str, entry: LexEntry | None) -> None:
        write_text_atomic(self.directory / f"{key}.json", KeptAnswer(entry=entry).model_dump_json())
        self.used.add(key)

    def prune(self, wanted: set[str]) -> None:
        """Forget answers that neither `wanted` (the list's words) nor this holder used, so the
        folder tracks the list it serves."""
        for path in self.directory.glob("*.json"):
            if path.stem not in wanted and path.stem not in self.used:
                path.unlink(missing_ok=True)
