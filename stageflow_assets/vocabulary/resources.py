"""The vocabulary domain's providers, chosen from the environment when the code location loads.

Secrets (API keys) are `EnvVar`s, resolved by Dagster at run time and never written anywhere;
the image backend exists only when `STAGEFLOW_IMAGES_URL` is set (images are off by default).
The lexicon is WordNet unless `STAGEFLOW_LEXICON=claude` (key `ANTHROPIC_API_KEY`, API root
`STAGEFLOW_CLAUDE_BASE_URL` for a gateway or a test server, lists with more words to ask than
`STAGEFLOW_CLAUDE_BATCH_THRESHOLD` (default 50) through Message Batches, with up to
`STAGEFLOW_CLAUDE_MAX_REBATCH_ROUNDS` (default 2) follow-up batches for expired/errored items).
Every network provider (Claude, AnkiConnect, images) gets the circuit-breaker settings of
`STAGEFLOW_BREAKER_*` (providers/breaker.py).
"""

from __future__ import annotations

import os

import dagster as dg

from stageflow_assets.providers.anki import AnkiCollection
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.providers.breaker import breaker_config_from_env
from stageflow_assets.providers.images import ImageGenerator, OpenAIImages
from stageflow_assets.core.errors import BadInputError
from stageflow_assets.providers.lexicon import Lexicon, WordNetLexicon
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary.checks import VocabularyChecks
from stageflow_assets.vocabulary.claude import DEFAULT_BATCH_THRESHOLD, DEFAULT_MAX_REBATCH_ROUNDS, ClaudeLexicon

ANKICONNECT_URL_ENV = "STAGEFLOW_ANKICONNECT_URL"
ANKICONNECT_KEY_ENV = "STAGEFLOW_ANKICONNECT_KEY"
IMAGES_URL_ENV = "STAGEFLOW_IMAGES_URL"
IMAGES_KEY_ENV = "STAGEFLOW_IMAGES_API_KEY"
IMAGES_MODEL_ENV = "STAGEFLOW_IMAGES_MODEL"
IPA_SEVERITY_ENV = "STAGEFLOW_IPA_SEVERITY"
LEXICON_ENV = "STAGEFLOW_LEXICON"
CLAUDE_KEY_ENV = "ANTHROPIC_API_KEY"
CLAUDE_BASE_URL_ENV = "STAGEFLOW_CLAUDE_BASE_URL"
BATCH_THRESHOLD_ENV = "STAGEFLOW_CLAUDE_BATCH_THRESHOLD"
REBATCH_ROUNDS_ENV = "STAGEFLOW_CLAUDE_MAX_REBATCH_ROUNDS"


def _env(name: str):
    return dg.EnvVar(name) if os.environ.get(name) else None


def lexicon_backend() -> str:
    backend = (os.environ.get(LEXICON_ENV) or "wordnet").strip().lower()
    if backend not in ("wordnet", "claude"):
        raise BadInputError(f"{LEXICON_ENV}={backend!r}: use wordnet (default) or claude")
    return backend


def lexicon_from_env(resolve_secrets: bool = False) -> Lexicon:
    """The configured lexicon. `resolve_secrets`: read the key now (the CLI's own polling);
    otherwise it is an `EnvVar` Dagster resolves inside a run or sensor tick."""
    if lexicon_backend() == "wordnet":
        return WordNetLexicon()
    if resolve_secrets:
        key = os.environ.get(CLAUDE_KEY_ENV, "")
    else:
        # an unset EnvVar would fail every step listing the resource, WordNet runs included
        key = dg.EnvVar(CLAUDE_KEY_ENV) if os.environ.get(CLAUDE_KEY_ENV) else ""
    numbers = {}
    for name, default in ((BATCH_THRESHOLD_ENV, DEFAULT_BATCH_THRESHOLD), (REBATCH_ROUNDS_ENV, DEFAULT_MAX_REBATCH_ROUNDS)):
        raw = os.environ.get(name) or str(default)
        try:
            numbers[name] = int(raw)
        except ValueError:
            raise BadInputError(f"{name}={raw!r} is not a whole number") from None
        if name == REBATCH_ROUNDS_ENV and numbers[name] < 0:
            raise BadInputError(f"{name}={raw!r} is negative")
    claude = ClaudeResource(api_key=key, base_url=os.environ.get(CLAUDE_BASE_URL_ENV) or None,
                            breaker=breaker_config_from_env())
    return ClaudeLexicon(claude=claude, batch_threshold=numbers[BATCH_THRESHOLD_ENV],
                         max_rebatch_rounds=numbers[REBATCH_ROUNDS_ENV])


def vocabulary_resources() -> dict[str, dg.ConfigurableResource]:
    breaker = breaker_config_from_env()
    ankiconnect = AnkiConnect(url=os.environ.get(ANKICONNECT_URL_ENV) or AnkiConnect().url,
                              api_key=_env(ANKICONNECT_KEY_ENV), breaker=breaker)
    images: ImageGenerator = ImageGenerator()
    if os.environ.get(IMAGES_URL_ENV):
        images = OpenAIImages(base_url=os.environ[IMAGES_URL_ENV], api_key=_env(IMAGES_KEY_ENV),
                              model=os.environ.get(IMAGES_MODEL_ENV) or OpenAIImages().model, breaker=breaker)
    severity = os.environ.get(IPA_SEVERITY_ENV, "WARN").upper()
    return {
        "lexicon": lexicon_from_env(),
        "tts": EspeakTTS(),
        "images": images,
        "ankiconnect": ankiconnect,
        "anki_collection": AnkiCollection(),
        "vocab_checks": VocabularyChecks(ipa_severity="ERROR" if severity == "ERROR" else "WARN"),
    }
