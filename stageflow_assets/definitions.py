"""The code location: each domain's definitions (with the resources it needs), the sensors that
watch every domain, and the executor."""

import dagster as dg

from stageflow_assets.core.resources import SHARED, pick
from stageflow_assets.core.sensors import outbox_failure_sensor, worker_health_sensor
from stageflow_assets.journey.definitions import defs as journey_defs
from stageflow_assets.subtitles.definitions import defs as subtitle_defs
from stageflow_assets.usage.definitions import defs as usage_defs
from stageflow_assets.vocabulary.definitions import defs as vocabulary_defs

# The in-process executor: per-step process spawn costs seconds on small machines, and a
# run is one partition's short chain; parallelism comes from concurrent runs.
every_domain = dg.Definitions(
    sensors=[
        worker_health_sensor,
        outbox_failure_sensor,
        dg.AutomationConditionSensorDefinition(
            "stageflow_automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=15,
        ),
    ],
    resources=pick(SHARED, "storage"),
    executor=dg.in_process_executor,
)

defs = dg.Definitions.merge(subtitle_defs, vocabulary_defs, journey_defs, usage_defs, every_domain)
