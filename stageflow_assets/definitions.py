"""The code location: each domain's definitions plus the shared resources and executor."""

import dagster as dg

from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.storage import StageStore
from stageflow_assets.providers.asr import WhisperASR
from stageflow_assets.providers.media import MediaTools
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.subtitles.definitions import defs as subtitle_defs
from stageflow_assets.vocabulary.definitions import defs as vocabulary_defs
from stageflow_assets.vocabulary.definitions import resources as vocabulary_resources
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.subtitles.style import SubtitleStyle

storage = StageStore()

# The in-process executor: per-step process spawn costs seconds on small machines, and a
# run is one partition's short chain; parallelism comes from concurrent runs.
shared = dg.Definitions(
    resources={
        "storage": storage,
        "io_manager": StageManifestIOManager(store=storage),
        "media": MediaTools(),
        "asr": WhisperASR(),
        "translator": ApertiumTranslator(),
        "rules": SubtitleRules(),
        "style": SubtitleStyle(),
        **vocabulary_resources,
    },
    sensors=[
        dg.AutomationConditionSensorDefinition(
            "stageflow_automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=15,
        )
    ],
    executor=dg.in_process_executor,
)

defs = dg.Definitions.merge(subtitle_defs, vocabulary_defs, shared)
