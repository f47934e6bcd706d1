"""The code location: each domain's definitions plus the shared resources and executor."""

import os

import dagster as dg

from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.sensors import outbox_failure_sensor, worker_health_sensor
from stageflow_assets.core.storage import StageStore
from stageflow_assets.journey.definitions import defs as journey_defs
from stageflow_assets.journey.definitions import resources as journey_resources
from stageflow_assets.providers.asr_whisperx import asr_resource_from_env
from stageflow_assets.providers.breaker import breaker_config_from_env
from stageflow_assets.providers.media import MediaTools
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.subtitles.definitions import defs as subtitle_defs
from stageflow_assets.subtitles.translators import TranslationSettings
from stageflow_assets.usage.definitions import defs as usage_defs
from stageflow_assets.vocabulary.definitions import defs as vocabulary_defs
from stageflow_assets.vocabulary.definitions import resources as vocabulary_resources
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.subtitles.style import SubtitleStyle

storage = StageStore()


def _claude() -> ClaudeResource:
    # EnvVar only when the key exists: an unset EnvVar fails every step that lists the resource,
    # and the offline default must run without a key
    base_url = os.environ.get("STAGEFLOW_CLAUDE_BASE_URL")  # a gateway or proxy; tests: a fake
    breaker = breaker_config_from_env()  # STAGEFLOW_BREAKER_*
    if os.environ.get("ANTHROPIC_API_KEY"):
        return ClaudeResource(api_key=dg.EnvVar("ANTHROPIC_API_KEY"), base_url=base_url, breaker=breaker)
    return ClaudeResource(api_key="", base_url=base_url, breaker=breaker)

# The in-process executor: per-step process spawn costs seconds on small machines, and a
# run is one partition's short chain; parallelism comes from concurrent runs.
shared = dg.Definitions(
    resources={
        "storage": storage,
        "io_manager": StageManifestIOManager(store=storage),
        "media": MediaTools(),
        "asr": asr_resource_from_env(),  # STAGEFLOW_ASR_BACKEND / STAGEFLOW_ASR_DEVICE
        "translator": ApertiumTranslator(),
        "claude": _claude(),
        "translation_settings": TranslationSettings(
            backend=os.environ.get("STAGEFLOW_TRANSLATION_BACKEND", "apertium")
        ),
        "rules": SubtitleRules(),
        "style": SubtitleStyle(),
        **vocabulary_resources,
        **journey_resources,  # chat (an OpenAI-compatible/Ollama LLM), comfyui, journey_settings
    },
    sensors=[
        worker_health_sensor,
        outbox_failure_sensor,
        dg.AutomationConditionSensorDefinition(
            "stageflow_automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=15,
        )
    ],
    executor=dg.in_process_executor,
)

defs = dg.Definitions.merge(subtitle_defs, vocabulary_defs, journey_defs, usage_defs, shared)
