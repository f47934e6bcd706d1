"""The resources several domains use, each built once and reused by key.

Each domain's `definitions.py` lists every resource its assets, checks and sensors need; the ones
below come from `SHARED`, the same object in every domain (`Definitions.merge` takes one object
per key). Chosen from the environment when the code location loads; secrets are `EnvVar`s that
Dagster resolves inside a run or tick, never written anywhere.

- `storage`, `io_manager`: the stage dirs under `STAGEFLOW_HOME` and the manifests between assets.
- `claude`: Claude (`ANTHROPIC_API_KEY`; `STAGEFLOW_CLAUDE_BASE_URL` for a gateway or a test
  server): subtitle translation, the vocabulary lexicon, the journey's LLM.
- `media` (ffmpeg), `translator` (Apertium).
- `images`: none by default; the OpenAI-compatible images endpoint at `STAGEFLOW_IMAGES_URL`
  (`STAGEFLOW_IMAGES_API_KEY`, `STAGEFLOW_IMAGES_MODEL`) for card pictures and journey images.
Every network provider gets the circuit-breaker settings of `STAGEFLOW_BREAKER_*`.
"""

from __future__ import annotations

import os

import dagster as dg

from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.breaker import breaker_config_from_env
from stageflow_assets.providers.images import ImageGenerator, OpenAIImages
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.providers.media import MediaTools
from stageflow_assets.providers.translate import ApertiumTranslator

CLAUDE_KEY_ENV = "ANTHROPIC_API_KEY"
CLAUDE_BASE_URL_ENV = "STAGEFLOW_CLAUDE_BASE_URL"
IMAGES_URL_ENV = "STAGEFLOW_IMAGES_URL"
IMAGES_KEY_ENV = "STAGEFLOW_IMAGES_API_KEY"
IMAGES_MODEL_ENV = "STAGEFLOW_IMAGES_MODEL"


def env_secret(name: str) -> dg.EnvVar | None:
    """An `EnvVar` only when the variable is set: an unset one fails every step listing the
    resource, and the offline defaults must run without any key."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def claude_from_env() -> ClaudeResource:
    return ClaudeResource(api_key=env_secret(CLAUDE_KEY_ENV) or "",
                          base_url=os.environ.get(CLAUDE_BASE_URL_ENV) or None,
                          breaker=breaker_config_from_env())


def images_from_env() -> ImageGenerator:
    if not os.environ.get(IMAGES_URL_ENV):
        return ImageGenerator()
    return OpenAIImages(base_url=os.environ[IMAGES_URL_ENV], api_key=env_secret(IMAGES_KEY_ENV),
                        model=os.environ.get(IMAGES_MODEL_ENV) or OpenAIImages().model,
                        breaker=breaker_config_from_env())


def shared_resources() -> dict[str, dg.ConfigurableResource | dg.ConfigurableIOManager]:
    storage = StageStore()
    return {
        "storage": storage,
        "io_manager": StageManifestIOManager(store=storage),
        "claude": claude_from_env(),
        "media": MediaTools(),
        "translator": ApertiumTranslator(),
        "images": images_from_env(),
    }


SHARED = shared_resources()


def pick(shared: dict | None, *keys: str) -> dict:
    """`keys` of `shared` (default: `SHARED`, the code location's own objects)."""
    source = SHARED if shared is None else shared
    return {key: source[key] for key in keys}
