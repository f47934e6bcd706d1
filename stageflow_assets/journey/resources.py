"""The journey's providers, chosen from the environment when the code location loads.

Offline (nothing set): Apertium translates and plays Stille Post, images, music and video are
procedural. `ANTHROPIC_API_KEY` (Claude) or `STAGEFLOW_LLM_URL` + `STAGEFLOW_LLM_MODEL` (any
OpenAI-compatible or Ollama chat endpoint) add an LLM: it serves the pairs Apertium lacks
(German–English), the perspectives, and confirms §86a matches. `STAGEFLOW_COMFYUI_URL` makes
ComfyUI the default image backend (`--output image:offline` still asks for the procedural one);
without it, `STAGEFLOW_IMAGES_URL` makes the OpenAI-compatible images endpoint the default.
`STAGEFLOW_JOURNEY_PREFER=llm` sends every translation to the LLM even where Apertium has the pair.
"""

from __future__ import annotations

import os
from typing import Literal

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.providers.breaker import breaker_config_from_env
from stageflow_assets.providers.chat import ChatEndpoint, chat_endpoint_from_env

PREFER_ENV = "STAGEFLOW_JOURNEY_PREFER"
COMFYUI_URL_ENV = "STAGEFLOW_COMFYUI_URL"
COMFYUI_CHECKPOINT_ENV = "STAGEFLOW_COMFYUI_CHECKPOINT"


class JourneySettings(dg.ConfigurableResource):
    """Which backend a journey uses when several could."""

    prefer: Literal["apertium", "llm"] = "apertium"
    image_backend: Literal["offline", "comfyui", "images"] = "offline"


def journey_settings_from_env() -> JourneySettings:
    prefer = (os.environ.get(PREFER_ENV) or "apertium").strip().lower()
    if prefer not in ("apertium", "llm"):
        raise BadInputError(f"{PREFER_ENV}={prefer!r}: use apertium (default) or llm")
    from stageflow_assets.core.resources import IMAGES_URL_ENV

    if (os.environ.get(COMFYUI_URL_ENV) or "").strip():
        images = "comfyui"
    elif (os.environ.get(IMAGES_URL_ENV) or "").strip():
        images = "images"  # the vocabulary domain's OpenAI-compatible images endpoint
    else:
        images = "offline"
    return JourneySettings(prefer=prefer, image_backend=images)


def no_chat_endpoint() -> ChatEndpoint:
    """The `chat` resource when none is configured: `llm_from_env` reads it as no LLM."""
    return ChatEndpoint(url="", model="")


def comfyui_from_env():
    from stageflow_assets.providers.comfyui import ComfyUIResource

    url = (os.environ.get(COMFYUI_URL_ENV) or "").strip()
    checkpoint = (os.environ.get(COMFYUI_CHECKPOINT_ENV) or "").strip()
    return ComfyUIResource(url=url, breaker=breaker_config_from_env(),
                           **({"checkpoint": checkpoint} if checkpoint else {}))


def journey_resources(shared: dict | None = None) -> dict[str, dg.ConfigurableResource]:
    """Every resource the journey assets and sensors use. `shared`: the cross-domain ones to reuse
    (the code location passes `SHARED`; by default they are built afresh)."""
    from stageflow_assets.core.resources import pick, shared_resources

    shared = shared_resources() if shared is None else shared
    return {
        **pick(shared, "storage", "io_manager", "claude", "translator", "images"),
        "chat": chat_endpoint_from_env(breaker=breaker_config_from_env()) or no_chat_endpoint(),
        "comfyui": comfyui_from_env(),
        "journey_settings": journey_settings_from_env(),
    }


class JourneyBackends:
    """The resources a stage was given, as what the journey functions take: translators (Apertium
    plus the LLM, if one is configured) and the LLM confirmation of safety matches."""

    def __init__(self, translator, claude, chat: ChatEndpoint, settings: JourneySettings) -> None:
        from stageflow_assets.journey.interception import Translators, llm_from_env

        self.llm = llm_from_env(claude, chat)
        self.translators = Translators(translator, self.llm, settings.prefer)
        self.settings = settings

    @property
    def confirm(self):
        if self.llm is None:
            return None
        from stageflow_assets.journey.confirmation import LLMConfirmation

        return LLMConfirmation(self.llm)

    def parameters(self) -> dict[str, object]:
        """What decides which backend serves what, for the stage's config (and fingerprint)."""
        llm = None
        if self.llm is not None:
            llm = {"backend": self.llm.name, "model": getattr(getattr(self.llm, "claude", self.llm), "model", None)}
        from stageflow_assets.journey.confirmation import CONFIRM_VERSION

        return {"prefer": self.settings.prefer, "llm": llm, "confirm_version": CONFIRM_VERSION}
