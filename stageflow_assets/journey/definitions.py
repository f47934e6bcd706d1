"""Everything the journey domain ships, with the resources it needs."""

import dagster as dg

from stageflow_assets.core.resources import SHARED
from stageflow_assets.journey.assets import intercepted_prompt, journey_prompt, output_clearance
from stageflow_assets.journey.bundle_assets import research_bundle
from stageflow_assets.journey.jobs import journey_job, research_bundle_job
from stageflow_assets.journey.media_assets import journey_media
from stageflow_assets.journey.resources import journey_resources
from stageflow_assets.journey.schedules import nightly_research_bundle
from stageflow_assets.journey.sensors import journey_record_sensors, prompts_inbox_sensor

defs = dg.Definitions(
    assets=[journey_prompt, intercepted_prompt, output_clearance, journey_media, research_bundle],
    jobs=[journey_job, research_bundle_job],
    sensors=[prompts_inbox_sensor, *journey_record_sensors],
    schedules=[nightly_research_bundle],
    resources=journey_resources(SHARED),
    executor=dg.in_process_executor,  # see stageflow_assets/definitions.py
)
