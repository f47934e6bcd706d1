"""The vocabulary domain's providers, chosen from the environment when the code location loads.

Secrets (API keys) are `EnvVar`s, resolved by Dagster at run time and never written anywhere;
the image backend exists only when `STAGEFLOW_IMAGES_URL` is set (images are off by default).
"""

from __future__ import annotations

import os

import dagster as dg

from stageflow_assets.providers.anki import AnkiCollection
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.providers.images import ImageGenerator, OpenAIImages
from stageflow_assets.providers.lexicon import WordNetLexicon
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary.checks import VocabularyChecks

ANKICONNECT_URL_ENV = "STAGEFLOW_ANKICONNECT_URL"
ANKICONNECT_KEY_ENV = "STAGEFLOW_ANKICONNECT_KEY"
IMAGES_URL_ENV = "STAGEFLOW_IMAGES_URL"
IMAGES_KEY_ENV = "STAGEFLOW_IMAGES_API_KEY"
IMAGES_MODEL_ENV = "STAGEFLOW_IMAGES_MODEL"
IPA_SEVERITY_ENV = "STAGEFLOW_IPA_SEVERITY"


def _env(name: str):
    return dg.EnvVar(name) if os.environ.get(name) else None


def vocabulary_resources() -> dict[str, dg.ConfigurableResource]:
    ankiconnect = AnkiConnect(url=os.environ.get(ANKICONNECT_URL_ENV) or AnkiConnect().url,
                              api_key=_env(ANKICONNECT_KEY_ENV))
    images: ImageGenerator = ImageGenerator()
    if os.environ.get(IMAGES_URL_ENV):
        images = OpenAIImages(base_url=os.environ[IMAGES_URL_ENV], api_key=_env(IMAGES_KEY_ENV),
                              model=os.environ.get(IMAGES_MODEL_ENV) or OpenAIImages().model)
    severity = os.environ.get(IPA_SEVERITY_ENV, "WARN").upper()
    return {
        "lexicon": WordNetLexicon(),
        "tts": EspeakTTS(),
        "images": images,
        "ankiconnect": ankiconnect,
        "anki_collection": AnkiCollection(),
        "vocab_checks": VocabularyChecks(ipa_severity="ERROR" if severity == "ERROR" else "WARN"),
    }
