"""The vocabulary domain's own providers, chosen from the environment when the code location loads.

The lexicon is WordNet unless `STAGEFLOW_LEXICON=claude` (the shared `claude` resource; lists with
more words to ask than `STAGEFLOW_CLAUDE_BATCH_THRESHOLD` (default 50) go through Message Batches,
with up to `STAGEFLOW_CLAUDE_MAX_REBATCH_ROUNDS` (default 2) follow-up batches for expired/errored
items). AnkiConnect at `STAGEFLOW_ANKICONNECT_URL` (`STAGEFLOW_ANKICONNECT_KEY`). `manifest_if_any`
loads `word_analysis`'s `claude_batch_results` input, which only the batch path materializes.
Storage, Claude, ffmpeg, Apertium and the images endpoint are shared with the other domains
(core/resources.py).
"""

from __future__ import annotations

import os

import dagster as dg

from stageflow_assets.providers.anki import AnkiCollection
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.providers.breaker import breaker_config_from_env
from stageflow_assets.core.errors import BadInputError
from stageflow_assets.providers.lexicon import Lexicon, WordNetLexicon
from stageflow_assets.core.resources import SHARED, env_secret, pick, shared_resources
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary.checks import VocabularyChecks
from stageflow_assets.vocabulary.claude import DEFAULT_BATCH_THRESHOLD, DEFAULT_MAX_REBATCH_ROUNDS, ClaudeLexicon
from stageflow_assets.vocabulary.optional_inputs import MANIFEST_IF_ANY, ManifestIfAny

ANKICONNECT_URL_ENV = "STAGEFLOW_ANKICONNECT_URL"
ANKICONNECT_KEY_ENV = "STAGEFLOW_ANKICONNECT_KEY"
IPA_SEVERITY_ENV = "STAGEFLOW_IPA_SEVERITY"
LEXICON_ENV = "STAGEFLOW_LEXICON"
BATCH_THRESHOLD_ENV = "STAGEFLOW_CLAUDE_BATCH_THRESHOLD"
REBATCH_ROUNDS_ENV = "STAGEFLOW_CLAUDE_MAX_REBATCH_ROUNDS"


def lexicon_backend() -> str:
    backend = (os.environ.get(LEXICON_ENV) or "wordnet").strip().lower()
    if backend not in ("wordnet", "claude"):
        raise BadInputError(f"{LEXICON_ENV}={backend!r}: use wordnet (default) or claude")
    return backend


def lexicon_from_env(claude: ClaudeResource | None = None) -> Lexicon:
    """The configured lexicon; the Claude one asks through `claude` (default: the shared one)."""
    if lexicon_backend() == "wordnet":
        return WordNetLexicon()
    numbers = {}
    for name, default in ((BATCH_THRESHOLD_ENV, DEFAULT_BATCH_THRESHOLD), (REBATCH_ROUNDS_ENV, DEFAULT_MAX_REBATCH_ROUNDS)):
        raw = os.environ.get(name) or str(default)
        try:
            numbers[name] = int(raw)
        except ValueError:
            raise BadInputError(f"{name}={raw!r} is not a whole number") from None
        if name == REBATCH_ROUNDS_ENV and numbers[name] < 0:
            raise BadInputError(f"{name}={raw!r} is negative")
    return ClaudeLexicon(claude=claude if claude is not None else SHARED["claude"],
                         batch_threshold=numbers[BATCH_THRESHOLD_ENV],
                         max_rebatch_rounds=numbers[REBATCH_ROUNDS_ENV])


def vocabulary_resources(shared: dict | None = None) -> dict[str, dg.ConfigurableResource]:
    """Every resource the vocabulary assets, checks and sensors use. `shared`: the cross-domain
    ones to reuse (the code location passes `SHARED`; by default they are built afresh)."""
    shared = shared_resources() if shared is None else shared
    severity = os.environ.get(IPA_SEVERITY_ENV, "WARN").upper()
    return {
        **pick(shared, "storage", "io_manager", "media", "translator", "images"),
        MANIFEST_IF_ANY: ManifestIfAny(store=shared["storage"]),
        "lexicon": lexicon_from_env(shared["claude"]),
        "tts": EspeakTTS(),
        "ankiconnect": AnkiConnect(url=os.environ.get(ANKICONNECT_URL_ENV) or AnkiConnect().url,
                                   api_key=env_secret(ANKICONNECT_KEY_ENV), breaker=breaker_config_from_env()),
        "anki_collection": AnkiCollection(),
        "vocab_checks": VocabularyChecks(ipa_severity="ERROR" if severity == "ERROR" else "WARN"),
    }
