"""The subtitle domain's own providers, chosen from the environment when the code location loads.

Whisper (`STAGEFLOW_ASR_BACKEND` faster-whisper or whisperx, `STAGEFLOW_ASR_DEVICE`,
`STAGEFLOW_ASR_BATCH`), the translation backend (`STAGEFLOW_TRANSLATION_BACKEND`: apertium, the
default, or claude; Whisper's own translation into English is the fallback where neither serves a
pair), the subtitle rules and the burn-in style. Storage, ffmpeg, Apertium
and Claude are shared with the other domains (core/resources.py).
"""

from __future__ import annotations

import os

import dagster as dg

from stageflow_assets.core.resources import pick, shared_resources
from stageflow_assets.providers.asr_whisperx import asr_resource_from_env
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.subtitles.style import SubtitleStyle
from stageflow_assets.subtitles.translators import TranslationSettings

TRANSLATION_BACKEND_ENV = "STAGEFLOW_TRANSLATION_BACKEND"


def subtitle_resources(shared: dict | None = None) -> dict[str, dg.ConfigurableResource]:
    """Every resource the subtitle assets, checks and sensors use. `shared`: the cross-domain ones
    to reuse (the code location passes `SHARED`; by default they are built afresh)."""
    shared = shared_resources() if shared is None else shared
    return {
        **pick(shared, "storage", "io_manager", "media", "translator", "claude"),
        "asr": asr_resource_from_env(),
        "translation_settings": TranslationSettings(backend=os.environ.get(TRANSLATION_BACKEND_ENV, "apertium")),
        "rules": SubtitleRules(),
        "style": SubtitleStyle(),
    }
